"""The pure-Python P-256 against OpenSSL (``cryptography``) on generated keys and messages.

OpenSSL is the reference: both implementations must agree on public keys, on
RFC 6979 deterministic signatures, and on which signatures verify. Mutated and
hostile inputs must end in CryptoError, never in another exception.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from device_runtime.core import p256, p256_encoding, p256_points
from device_runtime.core.errors import CryptoError
from device_runtime.core.hmac_sha256 import digests_equal, hmac_sha256

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.integers(min_value=1, max_value=p256_encoding.N - 1)
messages = st.binary(max_size=200)


def _private(d: int) -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(d, ec.SECP256R1())


def _point(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def _raw(der: bytes) -> bytes:
    r, s = decode_dss_signature(der)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def _der(raw: bytes) -> bytes:
    return encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))


def _openssl_accepts(point: bytes, message: bytes, raw: bytes) -> bool:
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    try:
        key.verify(_der(raw), message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def _ours_accepts(point: bytes, message: bytes, raw: bytes) -> bool:
    try:
        p256.verify(point, message, raw)
    except CryptoError:
        return False
    return True


@SETTINGS
@given(scalars)
def test_public_key_matches_openssl(d: int) -> None:
    assert p256.public_key(d.to_bytes(32, "big")) == _point(_private(d))


@SETTINGS
@given(scalars, messages)
def test_deterministic_signature_matches_openssl(d: int, message: bytes) -> None:
    key = _private(d)
    ours = p256.sign(d.to_bytes(32, "big"), message)
    theirs = key.sign(message, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
    assert ours == _raw(theirs)
    key.public_key().verify(_der(ours), message, ec.ECDSA(hashes.SHA256()))


@SETTINGS
@given(scalars, messages)
def test_openssl_random_nonce_signatures_verify(d: int, message: bytes) -> None:
    key = _private(d)
    der = key.sign(message, ec.ECDSA(hashes.SHA256()))
    p256.verify(_point(key), message, _raw(der))


@SETTINGS
@given(scalars, messages, st.integers(min_value=0, max_value=64 * 8 - 1))
def test_flipped_signature_bit_agrees_with_openssl(d: int, message: bytes, bit: int) -> None:
    key = _private(d)
    raw = bytearray(_raw(key.sign(message, ec.ECDSA(hashes.SHA256()))))
    raw[bit // 8] ^= 1 << (bit % 8)
    mutated = bytes(raw)
    r, s = int.from_bytes(mutated[:32], "big"), int.from_bytes(mutated[32:], "big")
    if not (0 < r < p256_encoding.N and 0 < s < p256_encoding.N):
        assert not _ours_accepts(_point(key), message, mutated)
        return
    assert _ours_accepts(_point(key), message, mutated) == _openssl_accepts(
        _point(key), message, mutated
    )


@SETTINGS
@given(scalars, messages, messages)
def test_other_message_rejected(d: int, message: bytes, other: bytes) -> None:
    raw = p256.sign(d.to_bytes(32, "big"), message)
    point = p256.public_key(d.to_bytes(32, "big"))
    assert _ours_accepts(point, other, raw) == (other == message)


@SETTINGS
@given(scalars, scalars, messages)
def test_other_key_rejected(d: int, e: int, message: bytes) -> None:
    raw = p256.sign(d.to_bytes(32, "big"), message)
    assert _ours_accepts(p256.public_key(e.to_bytes(32, "big")), message, raw) == (d == e)


@SETTINGS
@given(scalars, st.integers(min_value=0, max_value=65 * 8 - 1))
def test_flipped_key_bit_rejected(d: int, bit: int) -> None:
    point = bytearray(p256.public_key(d.to_bytes(32, "big")))
    point[bit // 8] ^= 1 << (bit % 8)
    raw = p256.sign(d.to_bytes(32, "big"), b"m")
    try:
        p256.verify(bytes(point), b"m", raw)
    except CryptoError as error:
        assert error.reason in (
            "public key must start with 0x04 (uncompressed SEC1)",
            "public key coordinate out of range [0, p-1]",
            "public key is not on the curve",
        )
    else:
        raise AssertionError("a key with a flipped bit verified")


@SETTINGS
@given(st.binary(max_size=130), st.binary(max_size=100), st.binary(max_size=130))
def test_hostile_bytes_raise_crypto_error_only(point: bytes, message: bytes, raw: bytes) -> None:
    try:
        p256.verify(point, message, raw)
    except CryptoError as error:
        assert error.reason
    else:
        raise AssertionError("random bytes verified")


@SETTINGS
@given(st.binary(min_size=64, max_size=64), messages)
def test_hostile_signature_on_real_key(raw: bytes, message: bytes) -> None:
    point = p256.public_key((12345).to_bytes(32, "big"))
    assert not _ours_accepts(point, message, raw)


@SETTINGS
@given(st.one_of(st.none(), st.integers(), st.text(), st.lists(st.integers(0, 255))))
def test_non_bytes_raise_crypto_error(value: object) -> None:
    point = p256.public_key((7).to_bytes(32, "big"))
    raw = p256.sign((7).to_bytes(32, "big"), b"m")
    for args in ((value, b"m", raw), (point, value, raw), (point, b"m", value)):
        try:
            p256.verify(*args)
        except CryptoError as error:
            assert "must be bytes" in error.reason
        else:
            raise AssertionError("non-bytes input accepted")


@SETTINGS
@given(st.binary(max_size=40))
def test_hostile_private_scalars(raw: bytes) -> None:
    d = int.from_bytes(raw, "big")
    if len(raw) == 32 and 0 < d < p256_encoding.N:
        assert p256.public_key(raw) == _point(_private(d))
        return
    try:
        p256.public_key(raw)
    except CryptoError as error:
        assert error.reason in ("private key must be 32 bytes", "private key out of range [1, n-1]")
    else:
        raise AssertionError("bad private scalar accepted")


@SETTINGS
@given(st.binary(max_size=200), st.binary(max_size=200))
def test_hmac_matches_stdlib(key: bytes, message: bytes) -> None:
    expected = hmac.new(key, message, hashlib.sha256).digest()
    assert hmac_sha256(key, message) == expected
    assert digests_equal(hmac_sha256(key, message), expected)


@SETTINGS
@given(st.integers(min_value=0, max_value=(1 << 256) - 1), st.sampled_from([5, 7]))
def test_naf_digits_rebuild_the_scalar(k: int, width: int) -> None:
    digits = p256_points._naf(k, width)
    values = [d if d < 128 else -(d - 128) for d in digits]
    assert sum(v << i for i, v in enumerate(values)) == k
    nonzero = [i for i, v in enumerate(values) if v]
    assert all(v % 2 == 1 and abs(v) < 1 << (width - 1) for v in values if v)
    assert all(b - a >= width for a, b in itertools.pairwise(nonzero))


@SETTINGS
@given(st.integers(min_value=0, max_value=p256_encoding.N - 1), scalars, scalars)
def test_mul_add_matches_openssl(u1: int, u2: int, q: int) -> None:
    numbers = _private(q).public_key().public_numbers()
    table = p256_points.odd_multiples(numbers.x, numbers.y, p256_points.Q_TABLE_SIZE)
    x, y, z = p256_points.mul_add(u1, u2, table)
    expected = (u1 + u2 * q) % p256_encoding.N
    if expected == 0:
        assert z == 0
        return
    ax, ay = p256_points.to_affine(x, y, z)
    assert b"\x04" + ax.to_bytes(32, "big") + ay.to_bytes(32, "big") == _point(_private(expected))


def test_mul_add_reaches_infinity() -> None:
    numbers = _private(5).public_key().public_numbers()
    table = p256_points.odd_multiples(numbers.x, numbers.y, p256_points.Q_TABLE_SIZE)
    assert p256_points.mul_add(p256_encoding.N - 10, 2, table)[2] == 0
    assert p256_points.mul_add(0, 0, table)[2] == 0
