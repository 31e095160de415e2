"""A real TPM 2.0 for the tests: swtpm with an EK certificate from a CA of the test's own.

``Swtpm`` manufactures a TPM state the way a TPM vendor would (``swtpm_setup
--create-ek-cert --create-platform-cert``, the certificates signed by a local
CA that ``swtpm_localca`` creates in the test's tmp dir, never in /var/lib or
/etc), then runs ``swtpm socket --tpm2`` on free loopback ports. A test may
stop it (SIGTERM), cut its power (SIGKILL) and start it again on the same
state, which is how counters are shown to survive a restart. The ``swtpm``
fixture always kills its process at teardown, also when the test failed.

Import the fixture where it is used (``from tests.swtpm_fixtures import
swtpm``); in strict mode a missing swtpm fails the test instead of skipping.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.components import binary, free_port

START_TIMEOUT = 10.0
SETUP_TIMEOUT = 60.0


def _port_pair() -> int:
    """A port P with P and P + 1 both free (swtpm's server and control sockets)."""
    for _ in range(50):
        port = free_port()
        if port >= 65535:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise AssertionError("no two adjacent free loopback ports")


class Swtpm:
    """One manufactured TPM: its state directory, its CA, and the process serving it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.state = directory / "state"
        self.ca_dir = directory / "localca"
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self._swtpm = binary("swtpm")
        self._manufacture()

    @property
    def tcti(self) -> str:
        """The TCTI string tpm2-pytss takes (``swtpm:host=127.0.0.1,port=P``)."""
        return f"swtpm:host=127.0.0.1,port={self.port}"

    @property
    def ek_ca_certificate(self) -> Path:
        """PEM of the CA that signed the EK certificate (swtpm_localca's issuer)."""
        return self.ca_dir / "issuercert.pem"

    @property
    def root_ca_certificate(self) -> Path:
        """PEM of the local root CA above the issuer (self-signed)."""
        return self.ca_dir / "swtpm-localca-rootca-cert.pem"

    def _manufacture(self) -> None:
        setup = binary("swtpm_setup")
        localca = binary("swtpm_localca")
        self.state.mkdir(parents=True)
        self.ca_dir.mkdir(parents=True)
        ca_conf = self.directory / "swtpm-localca.conf"
        ca_conf.write_text(
            f"statedir = {self.ca_dir}\n"
            f"signingkey = {self.ca_dir / 'signkey.pem'}\n"
            f"issuercert = {self.ca_dir / 'issuercert.pem'}\n"
            f"certserial = {self.ca_dir / 'certserial'}\n"
        )
        ca_options = self.directory / "swtpm-localca.options"
        ca_options.write_text(
            "--platform-manufacturer Sevenfold\n--platform-version 1.0\n--platform-model swtpm\n"
        )
        setup_conf = self.directory / "swtpm_setup.conf"
        setup_conf.write_text(
            f"create_certs_tool = {localca}\n"
            f"create_certs_tool_config = {ca_conf}\n"
            f"create_certs_tool_options = {ca_options}\n"
            "active_pcr_banks = sha256\n"
        )
        result = subprocess.run(
            [
                setup, "--tpm2", "--tpmstate", str(self.state), "--config", str(setup_conf),
                "--tpm", f"{self._swtpm} socket", "--create-ek-cert", "--create-platform-cert",
                "--logfile", str(self.directory / "swtpm_setup.log"),
            ],
            capture_output=True, text=True, timeout=SETUP_TIMEOUT,
            env={"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "HOME": str(self.directory),
                 "XDG_CONFIG_HOME": str(self.directory)},
        )  # fmt: skip
        if result.returncode != 0:
            log = (self.directory / "swtpm_setup.log").read_text(errors="replace")
            raise AssertionError(f"swtpm_setup failed: {result.stderr}{log[-2000:]}")

    def start(self) -> None:
        """Serve the state on fresh ports and wait until the TPM answers a command."""
        assert self.process is None, "swtpm already running"
        self.port = _port_pair()
        log = self.directory / "swtpm.log"
        self.process = subprocess.Popen(
            [
                self._swtpm, "socket", "--tpm2",
                "--server", f"type=tcp,port={self.port},bindaddr=127.0.0.1",
                "--ctrl", f"type=tcp,port={self.port + 1},bindaddr=127.0.0.1",
                "--tpmstate", f"dir={self.state}",
                "--flags", "not-need-init,startup-clear",
                "--log", f"file={log},level=1",
            ],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.process = None
                raise AssertionError(f"swtpm exited at start: {log.read_text(errors='replace')}")
            if self._answers():
                return
            time.sleep(0.02)
        self.kill()
        raise AssertionError("swtpm did not answer in time")

    def _answers(self) -> bool:
        """True once a TPM2_GetRandom(1) on the server socket gets a response header."""
        command = bytes.fromhex("80010000000c0000017b0001")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as conn:
                conn.sendall(command)
                return len(conn.recv(10)) >= 10
        except OSError:
            return False

    def stop(self) -> None:
        """An orderly shutdown (SIGTERM): swtpm saves its state and exits."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """A power cut (SIGKILL): whatever the TPM had not written is lost."""
        self._end(signal.SIGKILL)

    def restart(self, *, power_cut: bool = False) -> None:
        """Stop (or kill) and start again on the same state, on new ports."""
        if power_cut:
            self.kill()
        else:
            self.stop()
        self.start()

    def _end(self, sig: signal.Signals) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


@pytest.fixture
def swtpm(tmp_path: Path) -> Iterator[Swtpm]:
    """A running swtpm of this test's own, with a fresh EK and EK certificate."""
    tpm = Swtpm(tmp_path / "swtpm")
    try:
        tpm.start()
        yield tpm
    finally:
        tpm.kill()
