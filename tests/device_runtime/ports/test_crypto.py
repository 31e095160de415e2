"""Both crypto ports give the same answer, and the same reason, for every input.

Device-core code is written against one interface; a message that verifies on
the CPython simulator must verify on a MicroPython board and vice versa, and a
rejection must name the same cause on both.
"""

from __future__ import annotations

from collections.abc import Callable

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    Prehashed,
    decode_dss_signature,
    encode_dss_signature,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from device_runtime.core import der, p256, p256_encoding
from device_runtime.core.errors import CryptoError
from device_runtime.ports.cpython import crypto as cpython_crypto
from device_runtime.ports.micropython import crypto as micropython_crypto

SETTINGS = settings(max_examples=150, deadline=None)

scalars = st.integers(min_value=1, max_value=p256_encoding.N - 1)
messages = st.binary(max_size=200)


def _outcome(verify: Callable[[bytes, bytes, bytes], None], *args: object) -> str:
    try:
        verify(*args)  # type: ignore[arg-type]
    except CryptoError as error:
        return error.reason
    return "ok"


def _both(*args: object) -> str:
    cpython = _outcome(cpython_crypto.verify_es256, *args)
    micropython = _outcome(micropython_crypto.verify_es256, *args)
    assert cpython == micropython, (cpython, micropython)
    return cpython


def _openssl_signature(d: int, message: bytes) -> tuple[bytes, bytes]:
    key = ec.derive_private_key(d, ec.SECP256R1())
    point = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    r, s = decode_dss_signature(key.sign(message, ec.ECDSA(hashes.SHA256())))
    return point, r.to_bytes(32, "big") + s.to_bytes(32, "big")


@SETTINGS
@given(scalars, messages)
def test_valid_signatures_verify_on_both(d: int, message: bytes) -> None:
    point, raw = _openssl_signature(d, message)
    assert _both(point, message, raw) == "ok"
    private = d.to_bytes(32, "big")
    assert _both(p256.public_key(private), message, p256.sign(private, message)) == "ok"


@SETTINGS
@given(scalars, messages, st.integers(0, 65 * 8 - 1), st.integers(0, 64 * 8 - 1), messages)
def test_mutations_rejected_alike(
    d: int, message: bytes, key_bit: int, sig_bit: int, other: bytes
) -> None:
    point, raw = _openssl_signature(d, message)
    bad_point = bytearray(point)
    bad_point[key_bit // 8] ^= 1 << (key_bit % 8)
    bad_raw = bytearray(raw)
    bad_raw[sig_bit // 8] ^= 1 << (sig_bit % 8)
    assert _both(bytes(bad_point), message, raw) != "ok"
    assert _both(point, message, bytes(bad_raw)) != "ok"
    assert (_both(point, other, raw) == "ok") == (other == message)


@SETTINGS
@given(st.binary(max_size=130), st.binary(max_size=50), st.binary(max_size=130))
def test_hostile_bytes_rejected_alike(point: bytes, message: bytes, raw: bytes) -> None:
    assert _both(point, message, raw) != "ok"


@SETTINGS
@given(st.one_of(st.none(), st.integers(), st.text(), st.floats()))
def test_non_bytes_rejected_alike(value: object) -> None:
    point, raw = _openssl_signature(5, b"m")
    for args in ((value, b"m", raw), (point, value, raw), (point, b"m", value)):
        assert "must be bytes" in _both(*args)


@SETTINGS
@given(messages)
def test_sha256_agrees(data: bytes) -> None:
    assert cpython_crypto.sha256(data) == micropython_crypto.sha256(data)
    assert len(cpython_crypto.sha256(data)) == 32


@SETTINGS
@given(st.integers(min_value=-5, max_value=cpython_crypto.MAX_RANDOM_BYTES + 5))
def test_random_bytes_bounds_agree(n: int) -> None:
    for port in (cpython_crypto, micropython_crypto):
        if 0 <= n <= port.MAX_RANDOM_BYTES:
            assert len(port.random_bytes(n)) == n
        else:
            try:
                port.random_bytes(n)
            except CryptoError as error:
                assert "random byte count" in error.reason
            else:
                raise AssertionError("bad count accepted")


def test_random_bytes_differ() -> None:
    for port in (cpython_crypto, micropython_crypto):
        assert port.random_bytes(32) != port.random_bytes(32)


def _der_outcome(verify: Callable[[bytes, bytes, bytes], None], *args: bytes) -> bool:
    try:
        verify(*args)
    except CryptoError as error:
        assert error.reason
        return False
    return True


def _both_der(point: bytes, digest: bytes, signature: bytes) -> bool:
    """Whether both ports accept a DER signature over *digest* (their reasons may differ:
    OpenSSL says only that it does not match)."""
    cpython = _der_outcome(cpython_crypto.verify_ecdsa_der, point, digest, signature)
    micropython = _der_outcome(micropython_crypto.verify_ecdsa_der, point, digest, signature)
    assert cpython == micropython, (cpython, micropython, signature.hex())
    return cpython


def _der_signed(d: int, digest: bytes) -> tuple[bytes, bytes]:
    key = ec.derive_private_key(d, ec.SECP256R1())
    point = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return point, key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))


digests = st.binary(min_size=32, max_size=32)


@SETTINGS
@given(scalars, digests, st.integers(0, 71 * 8 - 1))
def test_der_signatures_over_a_digest_verify_and_fail_alike(
    d: int, digest: bytes, bit: int
) -> None:
    point, signature = _der_signed(d, digest)
    assert _both_der(point, digest, signature)
    flipped = bytearray(signature)
    flipped[bit // 8 % len(signature)] ^= 1 << (bit % 8)
    assert not _both_der(point, digest, bytes(flipped))
    assert not _both_der(point, bytes(32), signature) or digest == bytes(32)


@SETTINGS
@given(scalars, digests)
def test_only_der_is_accepted_by_both(d: int, digest: bytes) -> None:
    point, signature = _der_signed(d, digest)
    r, s = decode_dss_signature(signature)
    r_part = der.unsigned(r.to_bytes(32, "big"))
    padded_r = b"\x02" + bytes((r_part[1] + 1,)) + b"\x00" + r_part[2:]  # not minimal
    s_part = der.unsigned(s.to_bytes(32, "big"))
    loose = der.sequence(padded_r, s_part)
    long_form = b"\x30\x81" + signature[1:]
    assert not _both_der(point, digest, loose)
    assert not _both_der(point, digest, signature + b"\x00")
    assert not _both_der(point, digest, long_form)
    assert not _both_der(point, digest, encode_dss_signature(r, s + p256_encoding.N))


@SETTINGS
@given(st.binary(max_size=80))
def test_hostile_der_is_refused_alike(signature: bytes) -> None:
    point, _ = _der_signed(7, bytes(32))
    assert not _both_der(point, bytes(32), signature)
