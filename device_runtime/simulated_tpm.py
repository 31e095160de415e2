"""A simulated board's TPM 2.0 chip: swtpm, manufactured with an EK certificate, and its
resource manager.

What a TPM vendor and a Linux board provide, done with real software so the
TPM backend, the factory and the demo run against a real TPM 2.0
implementation (libtpms) rather than a fake:

* ``SimulatedTpm`` manufactures a TPM state the way a vendor does
  (``swtpm_setup --create-ek-cert --create-platform-cert``, the certificates
  signed by a local CA that ``swtpm_localca`` creates inside the chip's own
  directory, never in /var/lib or /etc), then serves it with ``swtpm socket
  --tpm2`` on free loopback ports. It can be stopped (SIGTERM), have its power
  cut (SIGKILL) and be started again on the same state.
* ``TpmResourceManager`` runs ``tpm2-abrmd`` in front of it, on a private
  D-Bus session bus. A TPM holds only three transient objects; OpenSSL's tpm2
  provider, doing a TLS handshake with the DeviceID key, needs more (hash
  sequences for the transcript), and only a resource manager that swaps
  objects in and out makes that work. On a Linux board the same role is
  played by ``/dev/tpmrm0`` or a system ``tpm2-abrmd``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from device_runtime.core.errors import ConfigError, RootOfTrustError

START_TIMEOUT_S = 10.0
SETUP_TIMEOUT_S = 60.0
_GET_RANDOM_1 = bytes.fromhex("80010000000c0000017b0001")
"""TPM2_GetRandom(1): the cheapest command that proves the TPM answers."""


def _program(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin:/bin")
    if found is None:
        raise ConfigError(
            f"{name} is not installed (Debian: apt-get install swtpm swtpm-tools tpm2-abrmd"
            " dbus libtss2-tcti-tabrmd0 tpm2-openssl)"
        )
    return found


def _free_port_pair() -> int:
    """A port P with P and P + 1 both free on loopback (swtpm's server and control sockets).

    Drawn below the kernel's ephemeral range (``ip_local_port_range``, 32768 and up by
    default): there every outgoing connection takes a port, and on a busy host (a fleet of
    boards polling their update service) the port after a free one is so often taken by
    one that 200 tries in a row failed. SO_REUSEADDR as swtpm's own listeners have it.
    """
    for _ in range(200):
        port = secrets.randbelow(12000) + 20000
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as first, \
                    socket.socket(socket.AF_INET, socket.SOCK_STREAM) as second:  # fmt: skip
                for sock, at in ((first, port), (second, port + 1)):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    sock.bind(("127.0.0.1", at))
        except OSError:
            continue
        return port
    raise RootOfTrustError("no two adjacent free loopback ports for swtpm")


def _end(process: subprocess.Popen[bytes] | None, sig: signal.Signals) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


class SimulatedTpm:
    """One manufactured TPM: its state directory, its vendor CA, and the process serving it."""

    def __init__(self, *, directory: Path) -> None:
        self.directory = directory
        self.state = directory / "state"
        self.ca_dir = directory / "localca"
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self._swtpm = _program("swtpm")
        if not (self.state / "tpm2-00.permall").exists():
            self._manufacture()

    @property
    def tcti(self) -> str:
        """The TCTI string for a direct connection (``swtpm:host=127.0.0.1,port=P``)."""
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
        setup = _program("swtpm_setup")
        localca = _program("swtpm_localca")
        self.state.mkdir(parents=True, exist_ok=True)
        self.ca_dir.mkdir(parents=True, exist_ok=True)
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
            capture_output=True, text=True, timeout=SETUP_TIMEOUT_S,
            env={"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "HOME": str(self.directory),
                 "XDG_CONFIG_HOME": str(self.directory)},
        )  # fmt: skip
        if result.returncode != 0:
            log = (self.directory / "swtpm_setup.log").read_text(errors="replace")
            raise RootOfTrustError(f"swtpm_setup failed: {result.stderr}{log[-2000:]}")

    def start(self) -> None:
        """Serve the state on fresh ports and wait until the TPM answers a command."""
        if self.process is not None:
            raise RootOfTrustError("the simulated TPM is already running")
        self.port = _free_port_pair()
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
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.process = None
                raise RootOfTrustError(f"swtpm exited at start: {log.read_text(errors='replace')}")
            if self._answers():
                return
            time.sleep(0.02)
        self.kill()
        raise RootOfTrustError("swtpm did not answer in time")

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as conn:
                conn.sendall(_GET_RANDOM_1)
                return len(conn.recv(10)) >= 10
        except OSError:
            return False

    def stop(self) -> None:
        """An orderly shutdown (SIGTERM): swtpm saves its state and exits."""
        process, self.process = self.process, None
        _end(process, signal.SIGTERM)

    def kill(self) -> None:
        """A power cut (SIGKILL): whatever the TPM had not written is lost."""
        process, self.process = self.process, None
        _end(process, signal.SIGKILL)

    def restart(self, *, power_cut: bool = False) -> None:
        """Stop (or kill) and start again on the same state, on new ports."""
        if power_cut:
            self.kill()
        else:
            self.stop()
        self.start()


class TpmResourceManager:
    """``tpm2-abrmd`` in front of one simulated TPM, on a D-Bus session bus of its own.

    Every user of the TPM (the TPM backend, OpenSSL's tpm2 provider in the TLS
    stack) connects through ``tcti``; the processes that do need
    ``environment()`` (the bus address) in theirs. GLib keeps one session-bus
    connection per process, so a process talks to one resource manager's bus.
    """

    def __init__(self, *, tpm: SimulatedTpm, directory: Path) -> None:
        self.tpm = tpm
        self.directory = directory
        self.bus_name = f"com.sevenfold.Tabrmd.p{os.getpid()}.t{tpm.port}"
        self.bus_address = ""
        self._bus: subprocess.Popen[bytes] | None = None
        self._abrmd: subprocess.Popen[bytes] | None = None

    @property
    def tcti(self) -> str:
        return f"tabrmd:bus_name={self.bus_name},bus_type=session"

    def environment(self) -> dict[str, str]:
        """What a process needs in its environment to reach this resource manager."""
        return {"DBUS_SESSION_BUS_ADDRESS": self.bus_address, "TSS2_LOG": "all+NONE"}

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        bus = subprocess.Popen(
            [_program("dbus-daemon"), "--session", "--nofork", "--print-address=1"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self._bus = bus
        assert bus.stdout is not None
        self.bus_address = bus.stdout.readline().decode().strip()
        if not self.bus_address:
            self.stop()
            raise RootOfTrustError("dbus-daemon did not print its address")
        log = (self.directory / "abrmd.log").open("wb")
        self._abrmd = subprocess.Popen(
            [
                _program("tpm2-abrmd"), "--session", "--allow-root",
                f"--dbus-name={self.bus_name}", f"--tcti={self.tpm.tcti}",
            ],
            stdout=log, stderr=log, env={**os.environ, **self.environment()},
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._abrmd.poll() is not None:
                self.stop()
                text = (self.directory / "abrmd.log").read_text(errors="replace")
                raise RootOfTrustError("tpm2-abrmd exited at start: " + text[-1000:])
            if self._registered():
                return
            time.sleep(0.05)
        self.stop()
        raise RootOfTrustError("tpm2-abrmd did not register on its bus in time")

    def _registered(self) -> bool:
        result = subprocess.run(
            [
                _program("dbus-send"), "--session", "--print-reply", "--dest=org.freedesktop.DBus",
                "/org/freedesktop/DBus", "org.freedesktop.DBus.NameHasOwner",
                f"string:{self.bus_name}",
            ],
            capture_output=True, text=True, env={**os.environ, **self.environment()}, timeout=5,
        )  # fmt: skip
        return "boolean true" in result.stdout

    def stop(self) -> None:
        abrmd, self._abrmd = self._abrmd, None
        _end(abrmd, signal.SIGTERM)
        bus, self._bus = self._bus, None
        _end(bus, signal.SIGTERM)
        if bus is not None and bus.stdout is not None:
            bus.stdout.close()
