"""Crypto port for CPython devices and the simulator, backed by OpenSSL.

Same five functions as the MicroPython port, so device-core code runs on
either. Input checks go through the portable core parser first, so both ports
refuse the same malformed keys and signatures with the same reasons; OpenSSL
then does the arithmetic (bench/bench_p256.py measures how much faster).
"""

from __future__ import annotations

import hashlib
import os

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    Prehashed,
    decode_dss_signature,
    encode_dss_signature,
)

from device_runtime.core import p256_encoding
from device_runtime.core.errors import CryptoError

MAX_RANDOM_BYTES = 1 << 16


def sha256(data: bytes) -> bytes:
    """SHA-256 of *data*, 32 bytes."""
    if not isinstance(data, (bytes, bytearray)):
        raise CryptoError("data must be bytes")
    return hashlib.sha256(data).digest()


def verify_es256(public_key: bytes, message: bytes, signature: bytes) -> None:
    """Return if *signature* (raw r || s) is a valid ES256 signature, else raise CryptoError."""
    if not isinstance(message, (bytes, bytearray)):
        raise CryptoError("message must be bytes")
    point = p256_encoding.parse_public_point(public_key)
    r, s = p256_encoding.parse_signature(signature)
    _verify(point, bytes(message), encode_dss_signature(r, s), hashes.SHA256())


def verify_ecdsa_der(public_key: bytes, digest: bytes, signature: bytes) -> None:
    """Return if the DER *signature* is a valid P-256 signature of the SHA-256 *digest*.

    MCUboot images carry this form; OpenSSL parses the DER, and refuses any
    encoding but the one DER allows, as the MicroPython port does.
    """
    point = p256_encoding.parse_public_point(public_key)
    if not isinstance(digest, (bytes, bytearray)) or len(digest) != p256_encoding.DIGEST_SIZE:
        raise CryptoError("digest must be 32 bytes (SHA-256)")
    _verify(point, bytes(digest), bytes(signature), Prehashed(hashes.SHA256()))


def _verify(
    point: tuple[int, int], data: bytes, der: bytes, algorithm: hashes.SHA256 | Prehashed
) -> None:
    x, y = point
    try:
        key = ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
        key.verify(der, data, ec.ECDSA(algorithm))
    except InvalidSignature:
        raise CryptoError("signature does not match") from None
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise CryptoError(f"OpenSSL refused the key or signature: {exc}") from None


def sign_es256(private_scalar: bytes, message: bytes) -> bytes:
    """ES256 signature (raw r || s) of *message* by the P-256 key *private_scalar*.

    For roots of trust that derive their keys (DICE, the software backend):
    OpenSSL's signer is constant-time, which the pure-Python core's is not.
    The scalar is checked by the core first, so both ports refuse the same keys.
    """
    if not isinstance(message, (bytes, bytearray)):
        raise CryptoError("message must be bytes")
    d = p256_encoding.private_int(private_scalar)
    key = ec.derive_private_key(d, ec.SECP256R1())
    r, s = decode_dss_signature(key.sign(bytes(message), ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def random_bytes(n: int) -> bytes:
    """*n* bytes from the operating system's CSPRNG (getrandom or /dev/urandom)."""
    if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= MAX_RANDOM_BYTES:
        raise CryptoError(f"random byte count must be an int in [0, {MAX_RANDOM_BYTES}]")
    return os.urandom(n)
