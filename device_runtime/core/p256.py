"""ECDSA over NIST P-256 with SHA-256 (ES256) in pure Python.

MicroPython has ``hashlib.sha256`` but no public-key cryptography, yet every
signature a device checks (attestation results, update metadata, images) is
ES256. This module gives the device core one implementation that runs
unchanged on CPython and on the MicroPython unix port with a 64 KiB heap; the
point arithmetic lives in ``device_runtime.core.p256_points``. Verification
avoids the last inversion: ``x(R) mod n == r`` is tested as ``r * Z^2 == X``.

Signing is here for development, tests and the simulated root of trust only.
It is NOT constant-time: timing depends on the key and nonce, and the
interpreter's big integers leak through caches. On a device, private keys stay
inside its root of trust (TPM, secure element) and never reach this code.
Nonces are deterministic (RFC 6979, HMAC-SHA256), so a weak random source cannot
leak the key. Signatures are not normalised to low S (the RFC 6979 vectors are
not), and verification accepts either S, as OpenSSL and COSE verifiers do.
"""

import hashlib

from device_runtime.core.errors import CryptoError
from device_runtime.core.p256_points import (
    GX,
    GY,
    Q_TABLE_SIZE,
    B,
    N,
    P,
    inverse,
    mul_add,
    odd_multiples,
    to_affine,
)
from device_runtime.core.rfc6979 import Nonces

__all__ = [
    "GX",
    "GY",
    "N",
    "P",
    "parse_public_point",
    "parse_signature",
    "private_int",
    "public_key",
    "sign",
    "sign_digest",
    "verify",
    "verify_digest",
]

SCALAR_SIZE = 32
POINT_SIZE = 65
SIGNATURE_SIZE = 64
DIGEST_SIZE = 32


def _bytes_like(value: object, what: str) -> None:
    if not isinstance(value, (bytes, bytearray)):
        raise CryptoError(what + " must be bytes")


def private_int(private_scalar: bytes) -> int:
    """The scalar of a 32-byte private key, refused unless it lies in [1, n-1]."""
    _bytes_like(private_scalar, "private key")
    if len(private_scalar) != SCALAR_SIZE:
        raise CryptoError("private key must be 32 bytes")
    d = int.from_bytes(private_scalar, "big")
    if not 0 < d < N:
        raise CryptoError("private key out of range [1, n-1]")
    return d


def _digest_int(digest: bytes) -> int:
    _bytes_like(digest, "digest")
    if len(digest) != DIGEST_SIZE:
        raise CryptoError("digest must be 32 bytes (SHA-256)")
    return int.from_bytes(digest, "big")


def _encode_point(x: int, y: int) -> bytes:
    return b"\x04" + x.to_bytes(SCALAR_SIZE, "big") + y.to_bytes(SCALAR_SIZE, "big")


def parse_public_point(public_point: bytes) -> tuple[int, int]:
    """Decode and validate an uncompressed SEC1 point, returning ``(x, y)``.

    An unchecked point lets an attacker pick a weak curve (invalid-curve
    attacks), so every key is checked to lie on P-256 before use. Compressed
    points are refused because COSE and X.509 in this system carry both
    coordinates.
    """
    _bytes_like(public_point, "public key")
    if public_point == b"\x00":
        raise CryptoError("public key is the point at infinity")
    if len(public_point) != POINT_SIZE:
        raise CryptoError("public key must be 65 bytes (uncompressed SEC1)")
    if public_point[0] != 4:
        raise CryptoError("public key must start with 0x04 (uncompressed SEC1)")
    x = int.from_bytes(public_point[1:33], "big")
    y = int.from_bytes(public_point[33:], "big")
    if x >= P or y >= P:
        raise CryptoError("public key coordinate out of range [0, p-1]")
    if (y * y - (x * x * x - 3 * x + B)) % P:
        raise CryptoError("public key is not on the curve")
    return x, y


def parse_signature(signature: bytes) -> tuple[int, int]:
    """Decode a raw ``r || s`` signature into ``(r, s)``, both in [1, n-1].

    Zero or out-of-range values would make the verification equation trivial
    to satisfy, so they are refused before any arithmetic.
    """
    _bytes_like(signature, "signature")
    if len(signature) != SIGNATURE_SIZE:
        raise CryptoError("signature must be 64 bytes (raw r || s)")
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:], "big")
    if not 0 < r < N:
        raise CryptoError("signature r out of range [1, n-1]")
    if not 0 < s < N:
        raise CryptoError("signature s out of range [1, n-1]")
    return r, s


def public_key(private_scalar: bytes) -> bytes:
    """The 65-byte uncompressed SEC1 public point of a 32-byte private scalar."""
    d = private_int(private_scalar)
    x, y = to_affine(*mul_add(d, 0, bytearray()))
    return _encode_point(x, y)


def sign_digest(private_scalar: bytes, digest: bytes) -> bytes:
    """Sign a SHA-256 digest, returning raw ``r || s`` (64 bytes).

    Not constant-time; see the module docstring for where this may be used.
    """
    d = private_int(private_scalar)
    e = _digest_int(digest)
    nonces = Nonces(d, digest)
    while True:
        k = nonces.next()
        x, _ = to_affine(*mul_add(k, 0, bytearray()))
        r = x % N
        s = inverse(k, N) * (e + r * d) % N
        if r and s:
            return r.to_bytes(SCALAR_SIZE, "big") + s.to_bytes(SCALAR_SIZE, "big")


def sign(private_scalar: bytes, message: bytes) -> bytes:
    """ES256 signature of *message*: ``sign_digest`` over its SHA-256."""
    _bytes_like(message, "message")
    return sign_digest(private_scalar, hashlib.sha256(message).digest())


def verify_digest(public_point: bytes, digest: bytes, signature: bytes) -> None:
    """Return if *signature* over the SHA-256 *digest* is valid, else raise CryptoError."""
    qx, qy = parse_public_point(public_point)
    e = _digest_int(digest)
    r, s = parse_signature(signature)
    w = inverse(s, N)
    u1 = e * w % N
    u2 = r * w % N
    x, _, z = mul_add(u1, u2, odd_multiples(qx, qy, Q_TABLE_SIZE))
    if not z:
        raise CryptoError("signature does not match")
    # x(R) = X / Z^2 lies in [0, p); it matches r mod n if it equals r or r + n.
    zz = z * z % P
    if (r * zz - x) % P == 0:
        return
    if r + N < P and ((r + N) * zz - x) % P == 0:
        return
    raise CryptoError("signature does not match")


def verify(public_point: bytes, message: bytes, signature: bytes) -> None:
    """Return if *signature* is a valid ES256 signature of *message*, else raise CryptoError."""
    _bytes_like(message, "message")
    verify_digest(public_point, hashlib.sha256(message).digest(), signature)
