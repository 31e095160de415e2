"""Evidence built under the real MicroPython, checked on CPython with independent code.

For the software and the DICE roots of trust, a MicroPython process (mpy-cross
bytecode, as a board loads it) makes the DeviceID CSR, the fleet's
manufacturer CA certifies it, and a second boot of the same device measures
the boot and builds the token (``evidence_on_device.py``). The token is then
decoded with cbor2, verified with pycose and, on DICE, its Alias certificate
checked with ``cryptography`` (``evidence_checks.py``), and must fit one
protocol message. The device's figures (token size, median time, bytes
allocated per token) are printed for ``docs/eat-profile.md``.

The heap is 96 KiB, not 64: the unix port keeps every imported module's
bytecode in the heap (a board freezes it into flash), and the evidence path
with this suite's helpers needs more than 64 KiB of it on DICE
(``docs/eat-profile.md``, "Measured", gives the smallest heap each kind runs in).
"""

from __future__ import annotations

import os
import statistics
import subprocess
from pathlib import Path

import pytest

from device_runtime.core import evidence
from fleet_platform.pki import CertificateAuthority
from tests.components import binary
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

HEAP = "96K"
MODULE = "tests.device_runtime.evidence_on_device"
ENVELOPE = 200
MESSAGE_LIMIT = 4096


def run_on_device(tree: Path, heap: str, *args: str) -> dict[str, list[list[str]]]:
    """The EVIDENCE lines a MicroPython run printed, by name."""
    result = subprocess.run(
        [binary("micropython"), "-X", "heapsize=" + heap, "-m", MODULE, *args],
        cwd=tree,  # "-m" puts the working directory first on sys.path: sources never load
        env=dict(os.environ, MICROPYPATH=f"{tree}:.frozen"),
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
    tree: Path, heap: str, kind: str, directory: Path, ca: CertificateAuthority
) -> tuple[bytes, bytes, list[list[str]]]:
    """(token, DeviceID certificate, per-run figures) of a device of *kind* under MicroPython."""
    directory.mkdir()
    csr = _joined(run_on_device(tree, heap, "csr", kind, str(directory))["csr"])
    deviceid = deviceid_certificate(ca, kind, csr)
    (directory / "deviceid.der").write_bytes(deviceid)
    printed = run_on_device(tree, heap, "token", kind, str(directory), INPUTS["nonce"].hex())
    return _joined(printed["token"]), deviceid, printed["run"]


@pytest.mark.parametrize("kind", PORTABLE_KINDS)
def test_a_token_made_under_micropython_verifies_and_fits(
    kind: str, bytecode_tree: Path, tmp_path: Path
) -> None:
    ca = manufacturer_ca(tmp_path / "ca")
    token, deviceid, runs = made_on_device(bytecode_tree, HEAP, kind, tmp_path / "device", ca)
    check_token(token, kind=kind, deviceid_der=deviceid)
    assert len(token) <= evidence.MAX_TOKEN
    assert len(token) + ENVELOPE <= MESSAGE_LIMIT
    milliseconds = statistics.median(int(run[0]) for run in runs) / 1000
    allocated = max(int(run[1]) for run in runs)
    free = int(runs[0][2])
    print(f"{kind}: token {len(token)} bytes, {milliseconds:.1f} ms median of {len(runs)},"
          f" {allocated} bytes allocated per token, {free} bytes free before")  # fmt: skip
