"""The MicroPython crypto port, run under MicroPython (64 KiB heap) and on CPython."""

from device_runtime.core import p256
from device_runtime.core.errors import CryptoError
from device_runtime.ports.micropython import crypto

PORTABLE = True

PRIVATE = (0x1234567890ABCDEF).to_bytes(32, "big")


def _rejected(reason_part, function, *args):
    try:
        function(*args)
    except CryptoError as error:
        assert reason_part in error.reason, error.reason
        return
    raise AssertionError("accepted, expected rejection: " + reason_part)


def test_sha256_known_answers():
    empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert crypto.sha256(b"").hex() == empty
    abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert crypto.sha256(b"abc").hex() == abc
    assert crypto.sha256(bytearray(b"abc")).hex() == abc


def test_sha256_rejects_non_bytes():
    _rejected("must be bytes", crypto.sha256, "abc")
    _rejected("must be bytes", crypto.sha256, None)


def test_verify_es256_round_trip():
    public = p256.public_key(PRIVATE)
    message = b"attestation result"
    crypto.verify_es256(public, message, p256.sign(PRIVATE, message))


def test_verify_es256_rejections():
    public = p256.public_key(PRIVATE)
    signature = p256.sign(PRIVATE, b"m")
    _rejected("does not match", crypto.verify_es256, public, b"n", signature)
    _rejected("64 bytes", crypto.verify_es256, public, b"m", signature[:-1])
    _rejected("r out of range", crypto.verify_es256, public, b"m", bytes(64))
    _rejected("not on the curve", crypto.verify_es256, public[:-1] + b"\x00", b"m", signature)
    _rejected("65 bytes", crypto.verify_es256, public[:33], b"m", signature)
    _rejected("must be bytes", crypto.verify_es256, public, None, signature)


def test_random_bytes():
    first = crypto.random_bytes(32)
    assert len(first) == 32
    assert first != crypto.random_bytes(32)
    assert crypto.random_bytes(0) == b""


def test_random_bytes_rejects_bad_counts():
    _rejected("random byte count", crypto.random_bytes, -1)
    _rejected("random byte count", crypto.random_bytes, crypto.MAX_RANDOM_BYTES + 1)
    _rejected("random byte count", crypto.random_bytes, "32")
    _rejected("random byte count", crypto.random_bytes, True)
