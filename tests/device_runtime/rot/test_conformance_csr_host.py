"""The CSR check, host half: requests made under MicroPython at 64 KiB, verified as a factory does.

Runs ``csr_on_device`` under the real MicroPython (mpy-cross bytecode in a ROMFS
image outside its 64 KiB heap, as on a board's flash) and checks each request it printed with
``cryptography``: a PKCS#10 whose self-signature verifies, naming the device
and carrying exactly the identity key the backend reported.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from firmware_images.micropython_bundle import romfs_image
from tests.device_runtime.rot.backends import PORTABLE_KINDS
from tests.device_runtime.rot.csr_on_device import COMMON_NAME, MARK
from tests.device_runtime.test_under_micropython import bytecode_tree

__all__ = ["bytecode_tree"]


LAUNCHER = Path(__file__).parents[1] / "flash_launcher.py"


def test_requests_made_under_micropython_verify_with_cryptography(
    bytecode_tree: Path, tmp_path: Path
) -> None:
    image = tmp_path / "flash.romfs"
    image.write_bytes(romfs_image(bytecode_tree))
    for kind in PORTABLE_KINDS:
        result = subprocess.run(
            [sys.executable, str(LAUNCHER), str(image), "64K",
             "tests.device_runtime.rot.csr_on_device", kind],
            cwd=tmp_path, capture_output=True, text=True, timeout=240, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        printed = [line.split() for line in result.stdout.splitlines() if line.startswith(MARK)]
        assert printed and all(words[1] == kind for words in printed), result.stdout
        point_hex = printed[0][2]
        request = x509.load_der_x509_csr(bytes.fromhex("".join(w[2] for w in printed[1:])))
        assert request.is_signature_valid, kind
        names = request.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        assert [n.value for n in names] == [COMMON_NAME], kind
        key = request.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        assert key.hex() == point_hex, kind
