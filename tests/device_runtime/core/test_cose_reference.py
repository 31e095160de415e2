"""Our COSE_Sign1 against independent code both ways (cbor2 + OpenSSL; pycose), and fuzzed."""

from __future__ import annotations

import cbor2
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from hypothesis import given, settings
from hypothesis import strategies as st
from pycose.algorithms import Es256
from pycose.headers import Algorithm
from pycose.keys import EC2Key
from pycose.messages import Sign1Message

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

    def pycose_key(self) -> EC2Key:
        numbers = self.private.private_numbers()
        return EC2Key(
            crv="P_256",
            x=numbers.public_numbers.x.to_bytes(32, "big"),
            y=numbers.public_numbers.y.to_bytes(32, "big"),
            d=self.scalar,
        )


def test_ours_verifies_with_cbor2_and_openssl() -> None:
    """An independent encoder (cbor2) rebuilds the Sig_structure; OpenSSL checks the signature."""
    key = _Key()
    message = cose.sign(key, b"evidence", {cose.KID: b"k"})
    item = cbor2.loads(message)
    assert item.tag == 18
    protected, unprotected, payload, signature = item.value
    assert cbor2.loads(protected) == {1: -7} and unprotected == {4: b"k"}
    to_be_signed = cbor2.dumps(["Signature1", protected, b"", payload])
    der = encode_dss_signature(
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    )
    key.private.public_key().verify(der, to_be_signed, ec.ECDSA(hashes.SHA256()))


def test_a_pycose_message_verifies_with_ours() -> None:
    key = _Key()
    message = Sign1Message(phdr={Algorithm: Es256}, payload=b"evidence")
    message.key = key.pycose_key()
    _, _, payload = cose.verify(message.encode(), key.public_key(), verify_es256)
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
