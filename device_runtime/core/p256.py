"""ECDSA over NIST P-256 with SHA-256 (ES256) in pure Python.

MicroPython has ``hashlib.sha256`` but no public-key cryptography, yet every
signature a device checks (attestation results, update metadata, images) is
ES256. This module gives the device core one implementation that runs
unchanged on CPython and on the MicroPython unix port with a 64 KiB heap; the
point arithmetic lives in ``device_runtime.core.p256_points``, the checks on keys and
signatures as bytes in ``device_runtime.core.p256_encoding``. Verification
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

from device_runtime.core import p256_encoding
from device_runtime.core.errors import CryptoError
from device_runtime.core.p256_points import (
    Q_TABLE_SIZE,
    inverse,
    mul_add,
    odd_multiples,
    to_affine,
)
from device_runtime.core.rfc6979 import Nonces

__all__ = ["public_key", "sign", "sign_digest", "verify", "verify_digest"]


def _digest_int(digest: bytes) -> int:
    p256_encoding.bytes_like(digest, "digest")
    if len(digest) != p256_encoding.DIGEST_SIZE:
        raise CryptoError("digest must be 32 bytes (SHA-256)")
    return int.from_bytes(digest, "big")


def public_key(private_scalar: bytes) -> bytes:
    """The 65-byte uncompressed SEC1 public point of a 32-byte private scalar."""
    d = p256_encoding.private_int(private_scalar)
    x, y = to_affine(*mul_add(d, 0, bytearray()))
    return p256_encoding.encode_point(x, y)


def sign_digest(private_scalar: bytes, digest: bytes) -> bytes:
    """Sign a SHA-256 digest, returning raw ``r || s`` (64 bytes).

    Not constant-time; see the module docstring for where this may be used.
    """
    d = p256_encoding.private_int(private_scalar)
    e = _digest_int(digest)
    nonces = Nonces(d, digest)
    while True:
        k = nonces.next()
        x, _ = to_affine(*mul_add(k, 0, bytearray()))
        r = x % p256_encoding.N
        s = inverse(k, p256_encoding.N) * (e + r * d) % p256_encoding.N
        if r and s:
            return r.to_bytes(p256_encoding.SCALAR_SIZE, "big") + s.to_bytes(
                p256_encoding.SCALAR_SIZE, "big"
            )


def sign(private_scalar: bytes, message: bytes) -> bytes:
    """ES256 signature of *message*: ``sign_digest`` over its SHA-256."""
    p256_encoding.bytes_like(message, "message")
    return sign_digest(private_scalar, hashlib.sha256(message).digest())


def verify_digest(public_point: bytes, digest: bytes, signature: bytes) -> None:
    """Return if *signature* over the SHA-256 *digest* is valid, else raise CryptoError."""
    qx, qy = p256_encoding.parse_public_point(public_point)
    e = _digest_int(digest)
    r, s = p256_encoding.parse_signature(signature)
    w = inverse(s, p256_encoding.N)
    u1 = e * w % p256_encoding.N
    u2 = r * w % p256_encoding.N
    x, _, z = mul_add(u1, u2, odd_multiples(qx, qy, Q_TABLE_SIZE))
    if not z:
        raise CryptoError("signature does not match")
    # x(R) = X / Z^2 lies in [0, p); it matches r mod n if it equals r or r + n.
    zz = z * z % p256_encoding.P
    if (r * zz - x) % p256_encoding.P == 0:
        return
    if (
        r + p256_encoding.N < p256_encoding.P
        and ((r + p256_encoding.N) * zz - x) % p256_encoding.P == 0
    ):
        return
    raise CryptoError("signature does not match")


def verify(public_point: bytes, message: bytes, signature: bytes) -> None:
    """Return if *signature* is a valid ES256 signature of *message*, else raise CryptoError."""
    p256_encoding.bytes_like(message, "message")
    verify_digest(public_point, hashlib.sha256(message).digest(), signature)
