"""Known-answer tests for the pure-Python P-256, run on CPython and under MicroPython.

Vectors: RFC 6979 appendix A.2.5 (P-256 key, SHA-256, messages "sample" and
"test"), the curve's own generator, and hand-made malformed keys and signatures.
"""

import hashlib

from device_runtime.core import p256, p256_encoding, p256_points, rfc6979
from device_runtime.core.errors import CryptoError

PORTABLE = True

PRIVATE = bytes.fromhex("c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721")
PUBLIC = bytes.fromhex(
    "04"
    "60fed4ba255a9d31c961eb74c6356d68c049b8923b61fa6ce669622e60f29fb6"
    "7903fe1008b8bc99a41ae9e95628bc64f2f1b20c2d7e9f5177a3c294d4462299"
)
SAMPLE_K = 0xA6E3C57DD01ABE90086538398355DD4C3B17AA873382B0F24D6129493D8AAD60
SAMPLE_SIG = bytes.fromhex(
    "efd48b2aacb6a8fd1140dd9cd45e81d69d2c877b56aaf991c34d0ea84eaf3716"
    "f7cb1c942d657c41d436c7a1b6e29f65f3e900dbb9aff4064dc4ab2f843acda8"
)
TEST_K = 0xD16B6AE827F17175E040871A1C7EC3500192C4C92677336EC2537ACAEE0008E0
TEST_SIG = bytes.fromhex(
    "f1abb023518351cd71d881567b1ea663ed3efcf6c5132b354f28d3b0b7d38367"
    "019f4113742a2b14bd25926b49c649155f267e60d3814b4c0cc84250e46f0083"
)


def _int32(value):
    return value.to_bytes(32, "big")


def _rejected(reason_part, function, *args):
    try:
        function(*args)
    except CryptoError as error:
        assert reason_part in error.reason, error.reason
        assert error.code == "crypto"
        return
    raise AssertionError("accepted, expected rejection: " + reason_part)


def test_rfc6979_public_key():
    assert p256.public_key(PRIVATE) == PUBLIC


def test_generator_multiples():
    g = b"\x04" + _int32(p256_points.GX) + _int32(p256_points.GY)
    minus_g = b"\x04" + _int32(p256_points.GX) + _int32(p256_encoding.P - p256_points.GY)
    assert p256.public_key(_int32(1)) == g
    assert p256.public_key(_int32(p256_encoding.N - 1)) == minus_g


def test_rfc6979_nonces():
    d = int.from_bytes(PRIVATE, "big")
    assert rfc6979.Nonces(d, hashlib.sha256(b"sample").digest()).next() == SAMPLE_K
    assert rfc6979.Nonces(d, hashlib.sha256(b"test").digest()).next() == TEST_K


def test_rfc6979_signatures():
    assert p256.sign(PRIVATE, b"sample") == SAMPLE_SIG
    assert p256.sign_digest(PRIVATE, hashlib.sha256(b"test").digest()) == TEST_SIG


def test_rfc6979_signatures_verify():
    p256.verify(PUBLIC, b"sample", SAMPLE_SIG)
    p256.verify_digest(PUBLIC, hashlib.sha256(b"test").digest(), TEST_SIG)


def test_high_and_low_s_both_verify():
    s = int.from_bytes(SAMPLE_SIG[32:], "big")
    p256.verify(PUBLIC, b"sample", SAMPLE_SIG[:32] + _int32(p256_encoding.N - s))


def test_round_trip_at_scalar_edges():
    # d = 1 and d = n - 1 make Q = +-G, so the interleaved loop meets equal and
    # opposite points; digests 0 and n make u1 = 0.
    for d in (1, 2, p256_encoding.N - 1):
        key = _int32(d)
        public = p256.public_key(key)
        for digest in (bytes(32), _int32(p256_encoding.N), b"\xff" * 32):
            p256.verify_digest(public, digest, p256.sign_digest(key, digest))


def test_wrong_message_rejected():
    _rejected("does not match", p256.verify, PUBLIC, b"samplf", SAMPLE_SIG)
    _rejected("does not match", p256.verify, PUBLIC, b"test", SAMPLE_SIG)


def test_wrong_key_rejected():
    other = p256.public_key(_int32(2))
    _rejected("does not match", p256.verify, other, b"sample", SAMPLE_SIG)


def test_swapped_r_and_s_rejected():
    _rejected("does not match", p256.verify, PUBLIC, b"sample", SAMPLE_SIG[32:] + SAMPLE_SIG[:32])


def test_signature_scalars_out_of_range():
    r, s = SAMPLE_SIG[:32], SAMPLE_SIG[32:]
    _rejected("r out of range", p256.verify, PUBLIC, b"sample", bytes(32) + s)
    _rejected("s out of range", p256.verify, PUBLIC, b"sample", r + bytes(32))
    _rejected("r out of range", p256.verify, PUBLIC, b"sample", _int32(p256_encoding.N) + s)
    _rejected("s out of range", p256.verify, PUBLIC, b"sample", r + _int32(p256_encoding.N))
    _rejected("r out of range", p256.verify, PUBLIC, b"sample", b"\xff" * 64)


def test_signature_length():
    _rejected("64 bytes", p256.verify, PUBLIC, b"sample", SAMPLE_SIG[:63])
    _rejected("64 bytes", p256.verify, PUBLIC, b"sample", SAMPLE_SIG + b"\x00")
    _rejected("64 bytes", p256.verify, PUBLIC, b"sample", b"")


def test_public_key_format():
    _rejected("point at infinity", p256.verify, b"\x00", b"sample", SAMPLE_SIG)
    _rejected("65 bytes", p256.verify, PUBLIC[:33], b"sample", SAMPLE_SIG)
    _rejected("65 bytes", p256.verify, PUBLIC + b"\x00", b"sample", SAMPLE_SIG)
    _rejected("65 bytes", p256.verify, b"", b"sample", SAMPLE_SIG)
    _rejected("start with 0x04", p256.verify, b"\x03" + PUBLIC[1:], b"sample", SAMPLE_SIG)


def test_off_curve_and_out_of_range_points():
    y = int.from_bytes(PUBLIC[33:], "big")
    off_curve = PUBLIC[:33] + _int32(y ^ 1)
    _rejected("not on the curve", p256.verify, off_curve, b"sample", SAMPLE_SIG)
    zero = b"\x04" + bytes(64)
    _rejected("not on the curve", p256.verify, zero, b"sample", SAMPLE_SIG)
    # Coordinates at or above p are not canonical field elements.
    big_x = b"\x04" + _int32(p256_encoding.P) + PUBLIC[33:]
    _rejected("out of range", p256.verify, big_x, b"sample", SAMPLE_SIG)
    big_y = PUBLIC[:33] + _int32(p256_encoding.P + 1)
    _rejected("out of range", p256.verify, big_y, b"sample", SAMPLE_SIG)
    _rejected("out of range", p256.verify, b"\x04" + b"\xff" * 64, b"sample", SAMPLE_SIG)


def test_private_key_range():
    _rejected("out of range", p256.public_key, bytes(32))
    _rejected("out of range", p256.public_key, _int32(p256_encoding.N))
    _rejected("32 bytes", p256.public_key, PRIVATE[:31])
    _rejected("out of range", p256.sign, b"\xff" * 32, b"m")


def test_digest_length():
    _rejected("32 bytes", p256.sign_digest, PRIVATE, b"\x01" * 31)
    _rejected("32 bytes", p256.verify_digest, PUBLIC, b"\x01" * 33, SAMPLE_SIG)


def test_non_bytes_rejected():
    _rejected("must be bytes", p256.verify, None, b"sample", SAMPLE_SIG)
    _rejected("must be bytes", p256.verify, PUBLIC, "sample", SAMPLE_SIG)
    _rejected("must be bytes", p256.verify, PUBLIC, b"sample", 7)
    _rejected("must be bytes", p256.public_key, [1] * 32)


def test_bytearray_accepted():
    p256.verify(bytearray(PUBLIC), bytearray(b"sample"), bytearray(SAMPLE_SIG))
