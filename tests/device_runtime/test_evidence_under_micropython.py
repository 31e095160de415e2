"""Evidence built under the real MicroPython, checked on CPython with independent code.

For the software and the DICE roots of trust, a MicroPython process makes the
DeviceID CSR, the fleet's manufacturer CA certifies it, and a second boot of
the same device measures the boot and builds the token
(``evidence_on_device.py``) while a fifth of its free heap is held back (the
margin of ``docs/protocol.md``). The token is then decoded with cbor2,
verified with pycose and, on DICE, its Alias certificate checked with
``cryptography`` (``evidence_checks.py``), and must fit one protocol message.
The device's figures (token size, median time, bytes allocated per token, free
heap) are printed for ``docs/eat-profile.md``.

The device runs the bundle from a ROMFS image outside its heap
(``flash_launcher.py``), as a board with a ROM partition does: loaded from
files, the unix port copies every module's bytecode into the heap, and the
evidence path alone is then about 60 KB of a 64 KiB heap. The software root
runs in 64 KiB; DICE in 76 KiB, as on the 64-bit unix port the interned names
(about 14 KB) and the Alias certificate's code and objects leave a 64 KiB heap
no contiguous run for the 1.5 KB token with the margin held
(``docs/eat-profile.md``, "Measured").
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from device_runtime.core import evidence
from firmware_images.micropython_bundle import romfs_image
from fleet_platform.pki import CertificateAuthority
from tests.device_runtime.evidence_checks import (
    INPUTS,
    check_token,
    deviceid_certificate,
    manufacturer_ca,
)
from tests.device_runtime.evidence_on_device import MARK
from tests.device_runtime.rot.backends import PORTABLE_KINDS
from tests.device_runtime.test_under_micropython import bytecode_tree

__all__ = ["bytecode_tree"]

HEAP = {"software": "64K", "dice": "76K"}
MODULE = "tests.device_runtime.evidence_on_device"
LAUNCHER = Path(__file__).with_name("flash_launcher.py")
ENVELOPE = 200
MESSAGE_LIMIT = 4096


def run_on_device(image: Path, heap: str, *args: str) -> dict[str, list[list[str]]]:
    """The EVIDENCE lines a MicroPython run from the ROMFS *image* printed, by name."""
    result = subprocess.run(
        [sys.executable, str(LAUNCHER), str(image), heap, MODULE, *args],
        cwd=image.parent,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines: dict[str, list[list[str]]] = {}
    for line in result.stdout.splitlines():
        words = line.split()
        if words and words[0] == MARK:
            lines.setdefault(words[1], []).append(words[2:])
    return lines


def _joined(lines: list[list[str]]) -> bytes:
    return bytes.fromhex("".join(words[0] for words in lines))


def made_on_device(
    image: Path, heap: str, kind: str, directory: Path, ca: CertificateAuthority
) -> tuple[bytes, bytes, list[list[str]]]:
    """(token, DeviceID certificate, per-run figures) of a device of *kind* under MicroPython."""
    directory.mkdir()
    csr = _joined(run_on_device(image, heap, "csr", kind, str(directory))["csr"])
    deviceid = deviceid_certificate(ca, kind, csr)
    (directory / "deviceid.der").write_bytes(deviceid)
    printed = run_on_device(image, heap, "token", kind, str(directory), INPUTS["nonce"].hex())
    return _joined(printed["token"]), deviceid, printed["run"]


@pytest.mark.parametrize("kind", PORTABLE_KINDS)
def test_a_token_made_under_micropython_verifies_and_fits(
    kind: str, bytecode_tree: Path, tmp_path: Path
) -> None:
    ca = manufacturer_ca(tmp_path / "ca")
    image = tmp_path / "flash.romfs"
    image.write_bytes(romfs_image(bytecode_tree))
    token, deviceid, runs = made_on_device(image, HEAP[kind], kind, tmp_path / "device", ca)
    check_token(token, kind=kind, deviceid_der=deviceid)
    assert len(token) <= evidence.MAX_TOKEN
    assert len(token) + ENVELOPE <= MESSAGE_LIMIT
    milliseconds = statistics.median(int(run[0]) for run in runs) / 1000
    allocated = statistics.median(int(run[1]) for run in runs[1:])
    free, held = int(runs[0][2]), int(runs[0][3])
    assert held >= free // 5 - 256, "the margin was not held"
    print(f"{kind} at {HEAP[kind]}: token {len(token)} bytes, {milliseconds:.1f} ms median of"
          f" {len(runs)}, first token {runs[0][1]} bytes allocated, then {allocated:.0f};"
          f" {free} bytes free before, {held} held back")  # fmt: skip
