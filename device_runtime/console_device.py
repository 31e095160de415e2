"""A simulated board whose provisioning console is on a pseudo-terminal.

The factory station opens the pty's path with pyserial exactly as it opens
``/dev/ttyUSB0`` on a real line, so tests and the demo drive the same console
code (``device_runtime.core.console``) through the same bytes as a board.
The board can be told to stall (stop answering) or to reboot (lose its RAM
and print its banner again), which is how the station's timeouts and its
reboot detection are tested.

Roots of trust are chosen by kind from :data:`ROOTS`, one line per kind.

    python -m device_runtime.console_device --dir D --hwmodel M --serial S [--rot software]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import signal
import threading
import tty
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from device_runtime.core.console import BANNER, Console, LineBuffer, read_installed
from device_runtime.core.errors import RootOfTrustError
from device_runtime.ports.cpython.atomic_file import write_atomic
from device_runtime.ports.cpython.crypto import verify_es256
from device_runtime.ports.cpython.storage import DirectoryStore
from device_runtime.simulator import open_root_of_trust

if TYPE_CHECKING:
    from device_runtime.core.port_types import RootOfTrust

RootFactory = Callable[[Path], "RootOfTrust"]


def derived_root(kind: str) -> RootFactory:
    """The software (development only) or DICE root of trust the simulator gives a board."""

    def open_root(directory: Path) -> RootOfTrust:
        return open_root_of_trust(kind=kind, directory=directory)

    return open_root


TPM_TCTI_FILE = "tpm.tcti"
"""The board's wiring: which TPM it talks to (a TCTI string), in its directory."""


def tpm_root(directory: Path) -> RootOfTrust:
    """The TPM the board is wired to (``tpm.tcti``); imported here, as only TPM boards need it."""
    from device_runtime.rot.tpm import TpmRootOfTrust

    try:
        tcti = (directory / TPM_TCTI_FILE).read_text().strip()
    except FileNotFoundError:
        raise RootOfTrustError(f"the board has no TPM wired ({TPM_TCTI_FILE} is missing)") from None
    return TpmRootOfTrust.open(tcti=tcti)


ROOTS: dict[str, RootFactory] = {
    "software": derived_root("software"),
    "dice": derived_root("dice"),
    "tpm": tpm_root,
}
"""Root-of-trust backends by kind; adding one is one line."""


class ConsoleDevice:
    """One simulated board: a root of trust, a state directory and a console on a pty."""

    def __init__(
        self,
        *,
        directory: Path,
        hwmodel: str,
        serial: str,
        rot: str | RootFactory = "software",
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.hwmodel = hwmodel
        self.serial = serial
        factory = ROOTS[rot] if isinstance(rot, str) else rot
        self.rot = factory(self.directory)
        self.store = DirectoryStore(directory=self.directory)
        self.stall_on: set[str] = set()
        """Commands on which the board stops answering until :meth:`resume`."""
        self.reboot_on: set[str] = set()
        """Commands on which the board reboots instead of answering (once each)."""
        self.boots = 0
        self._stalled = False
        self._stop = threading.Event()
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.path = os.ttyname(self._slave)
        self._console = self._boot()
        self._thread = threading.Thread(target=self._serve, name=f"console {serial}", daemon=True)

    def start(self) -> str:
        """Serve the console in a thread (once); the pty path a station opens."""
        if not self._thread.is_alive():
            self._thread.start()
        return self.path

    def stall(self) -> None:
        self._stalled = True

    @property
    def stalled(self) -> bool:
        return self._stalled

    def resume(self) -> None:
        self._stalled = False

    def reboot(self) -> None:
        """Lose what the console held in RAM, print the banner, serve on."""
        self._console = self._boot()
        os.write(self._master, BANNER)

    def installed(self) -> dict[str, object] | None:
        return read_installed(self.store)

    def stop(self) -> None:
        """Stop serving and let go of the root of trust (a TPM serves one connection)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        close = getattr(self.rot, "close", None)
        if close is not None:
            close()
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> ConsoleDevice:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _boot(self) -> Console:
        self.boots += 1
        return Console(
            rot=self.rot,
            store=self.store,
            hwmodel=self.hwmodel,
            serial=self.serial,
            verify_es256=verify_es256,
        )

    def _serve(self) -> None:
        buffer = LineBuffer()
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(self._master, 4096)
            except OSError:
                return
            if self._stalled:
                continue
            for line in buffer.feed(data):
                command = (line or b"").split(b" ")[0].decode("ascii", "replace")
                if command in self.reboot_on:
                    self.reboot_on.discard(command)
                    self.reboot()
                    continue
                if command in self.stall_on:
                    self.stall_on.discard(command)
                    self._stalled = True
                    break
                os.write(self._master, self._console.answer(line) + b"\n")


BROKER_CA_FILE = "fleet-ca.pem"


def export_credentials(directory: Path) -> Path | None:
    """Write the installed fleet certificate and broker CA where a TLS stack reads files.

    The provisioning record is the truth; ``device.crt`` and ``fleet-ca.pem``
    (PEM) are copies for the CPython MQTT transport. Returns the certificate's
    path, or None if the board is not provisioned.
    """
    record = read_installed(DirectoryStore(directory=directory))
    if record is None:
        return None
    for item, name in (("fleet-cert", "device.crt"), ("fleet-ca", BROKER_CA_FILE)):
        der = record[item]
        assert isinstance(der, bytes)
        pem = x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)
        write_atomic(directory / name, pem, mode=0o600)
    return directory / "device.crt"


def main() -> None:
    parser = argparse.ArgumentParser(description="A simulated board's console on a pty.")
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--hwmodel", required=True)
    parser.add_argument("--serial", required=True)
    parser.add_argument("--rot", default="software", choices=sorted(ROOTS))
    args = parser.parse_args()
    device = ConsoleDevice(
        directory=args.dir, hwmodel=args.hwmodel, serial=args.serial, rot=args.rot
    )
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    print(device.start(), flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        stopped.wait()
    device.stop()


if __name__ == "__main__":
    main()
