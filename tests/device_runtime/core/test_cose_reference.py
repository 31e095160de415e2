"""Our COSE_Sign1 against an independent implementation (python-cwt), both ways, and fuzzed."""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cwt import COSE, COSEKey
from hypothesis import given, settings
from hypothesis import strategies as st

from device_runtime.core import cose
from device_runtime.core.errors import SevenfoldError
from device_runtime.ports.cpython.crypto import sign_es256, verify_es256


class _Key:
    def __init__(self) -> None:
        self.private = ec.generate_private_key(ec.SECP256R1())
        self.scalar = self.private.private_numbers().private_value.to_bytes(32, "big")

    def public_key(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )

    def sign(self, message: bytes) -> bytes:
        return sign_es256(self.scalar, message)

    def cose_key(self, *, private: bool) -> COSEKey:
        if private:
            pem = self.private.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        else:
            pem = self.private.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        return COSEKey.from_pem(pem, alg="ES256", kid=b"k")


def test_ours_verifies_with_python_cwt() -> None:
    key = _Key()
    message = cose.sign(key, b"evidence", {cose.KID: b"k"})
    assert COSE.new().decode(message, key.cose_key(private=False)) == b"evidence"


def test_python_cwts_verifies_with_ours() -> None:
    key = _Key()
    message = COSE.new().encode(
        b"evidence", key.cose_key(private=True), protected={"alg": "ES256"}, unprotected={}
    )
    _, _, payload = cose.verify(message, key.public_key(), verify_es256)
    assert payload == b"evidence"


KEY = _Key()
GOOD = cose.sign(KEY, b"evidence with some length to it", {cose.KID: b"k"})


@settings(max_examples=400, deadline=None)
@given(st.integers(0, len(GOOD) - 1), st.integers(0, 255), st.integers(0, len(GOOD)))
def test_a_changed_or_cut_message_is_refused_unless_only_unsigned_headers_changed(
    at: int, byte: int, cut: int
) -> None:
    """Unprotected headers are not signed (RFC 9052): a change there may pass, nothing else."""
    for message in (GOOD[:at] + bytes((byte,)) + GOOD[at + 1 :], GOOD[:cut]):
        if message == GOOD:
            continue
        try:
            protected, _, payload = cose.verify(message, KEY.public_key(), verify_es256)
        except SevenfoldError as exc:
            assert exc.reason
        else:
            assert (protected, payload) == ({1: -7}, b"evidence with some length to it")
