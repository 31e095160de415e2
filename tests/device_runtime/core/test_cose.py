"""COSE_Sign1 on the device core, checked under MicroPython at 64 KiB: round trip and refusals.

PORTABLE. A fixed development key signs through the core signer (as the
software root of trust does on MicroPython); interop with independent code
(cbor2 and OpenSSL, pycose) is in ``test_cose_reference.py``.
"""

from device_runtime.core import cbor, cose
from device_runtime.core.errors import CryptoError, DecodeError

PORTABLE = True

SCALAR = bytes(31) + b"\x07"
"""A development key: its public point is 7 * G."""


class FixedKey:
    def public_key(self):
        from device_runtime.core import p256

        return p256.public_key(SCALAR)

    def sign(self, message):
        from device_runtime.core import p256

        return p256.sign(SCALAR, message)


def _verify_es256(public_key, message, signature):
    from device_runtime.core import p256

    p256.verify(public_key, message, signature)


def _refused(message, errors=(DecodeError,)):
    key = FixedKey().public_key()
    try:
        cose.verify(message, key, _verify_es256)
    except errors as exc:
        assert exc.reason
        return exc.reason
    raise AssertionError("accepted")


def test_a_signed_payload_verifies_and_comes_back_with_its_headers():
    key = FixedKey()
    message = cose.sign(key, b"evidence", {cose.KID: b"device-1"})
    protected, unprotected, payload = cose.verify(message, key.public_key(), _verify_es256)
    assert (protected, unprotected, payload) == ({1: -7}, {4: b"device-1"}, b"evidence")


def test_a_changed_payload_or_signature_fails_the_signature():
    key = FixedKey()
    parts = cbor.loads(cose.sign(key, b"evidence")).value
    forged = cbor.dumps(cbor.Tag(18, [parts[0], parts[1], b"evidencE", parts[3]]))
    _refused(forged, (CryptoError,))


def test_what_is_not_a_cose_sign1_this_accepts_is_refused_with_a_reason():
    key = FixedKey()
    parts = cbor.loads(cose.sign(key, b"x")).value
    protected, unprotected, payload, signature = parts
    cases = (
        cbor.dumps([protected, unprotected, payload, signature]),
        cbor.dumps(cbor.Tag(17, parts)),
        cbor.dumps(cbor.Tag(18, parts[:3])),
        cbor.dumps(cbor.Tag(18, [{1: -7}, unprotected, payload, signature])),
        cbor.dumps(cbor.Tag(18, [protected, unprotected, None, signature])),
        cbor.dumps(cbor.Tag(18, [protected, unprotected, payload, signature[:63]])),
        cbor.dumps(cbor.Tag(18, [cbor.dumps({1: -35}), unprotected, payload, signature])),
        cbor.dumps(cbor.Tag(18, [cbor.dumps({1: -7, 2: [1]}), unprotected, payload, signature])),
        cbor.dumps(cbor.Tag(18, [protected, {1: -7}, payload, signature])),
        cbor.dumps(cbor.Tag(18, [protected, {"kid": 1}, payload, signature])),
        cbor.dumps(cbor.Tag(18, [protected, [], payload, signature])),
    )
    for case in cases:
        _refused(case)
    for bad in (b"", b"\xd2", b"\xd2\x84"):
        _refused(bad)


def test_signing_refuses_what_it_would_not_accept():
    for headers in ({1: -7}, {2: [1]}, {"kid": 1}):
        try:
            cose.sign(FixedKey(), b"x", headers)
        except (CryptoError, DecodeError) as exc:
            assert exc.reason
        else:
            raise AssertionError("signed with " + repr(headers))
