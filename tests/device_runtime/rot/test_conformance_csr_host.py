"""The CSR check, host half: requests made under MicroPython at 64 KiB, verified as a factory does.

Runs ``test_conformance_csr_device`` under the real MicroPython (from mpy-cross
bytecode, 64 KiB heap) and checks each request it printed with
``cryptography``: a PKCS#10 whose self-signature verifies, naming the device
and carrying exactly the identity key the backend reported.
"""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from tests.device_runtime.rot.backends import PORTABLE_KINDS
from tests.device_runtime.rot.csr_on_device import COMMON_NAME, MARK
from tests.device_runtime.test_under_micropython import _run_runner, bytecode_tree

__all__ = ["bytecode_tree"]


def test_requests_made_under_micropython_verify_with_cryptography(bytecode_tree: Path) -> None:
    for kind in PORTABLE_KINDS:
        module = "tests.device_runtime.rot.test_conformance_csr_device_" + kind
        result = _run_runner([module], bytecode_tree)
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
