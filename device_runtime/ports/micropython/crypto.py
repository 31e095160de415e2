"""Crypto port for MicroPython: hashlib for SHA-256, the pure-Python core for ES256.

MicroPython has no public-key cryptography, so signatures are checked by
``device_runtime.core.p256`` (bench/bench_p256.py measures its speed).
``os.urandom`` on the unix port reads the kernel CSPRNG (getrandom or
/dev/urandom); boards whose ``os.urandom`` is backed by a hardware TRNG give the
same guarantee, and a board without one must not use this port for key
material. Same five functions as the CPython port.

``sign_es256`` here is DEVELOPMENT-ONLY: it runs the pure-Python signer, which
is not constant-time; it is never the production path on a device with a
hardware key (that key signs inside its TPM or secure element).
"""

import hashlib
import os

from device_runtime.core.errors import CryptoError

MAX_RANDOM_BYTES = 1 << 16


def sha256(data: bytes) -> bytes:
    """SHA-256 of *data*, 32 bytes."""
    if not isinstance(data, (bytes, bytearray)):
        raise CryptoError("data must be bytes")
    return hashlib.sha256(data).digest()


def verify_es256(public_key: bytes, message: bytes, signature: bytes) -> None:
    """Return if *signature* (raw r || s) is a valid ES256 signature, else raise CryptoError."""
    # Imported on first use: the curve code costs RAM that a device which only
    # needs random bytes right now should not pay at boot.
    from device_runtime.core import p256

    p256.verify(public_key, message, signature)


def verify_ecdsa_der(public_key: bytes, digest: bytes, signature: bytes) -> None:
    """Return if the DER *signature* is a valid P-256 signature of the SHA-256 *digest*.

    MCUboot images and TUF metadata carry this form. Only DER's one encoding
    passes (``core/ecdsa_der``), as OpenSSL requires too.
    """
    from device_runtime.core import ecdsa_der, p256

    p256.verify_digest(public_key, digest, ecdsa_der.raw_signature(signature))


def sign_es256(private_scalar: bytes, message: bytes) -> bytes:
    """ES256 signature (raw r || s) of *message*, by the pure-Python core signer.

    Development-only: not constant-time; never the production path on a
    device with a hardware key.
    """
    from device_runtime.core import p256

    return p256.sign(private_scalar, message)


def random_bytes(n: int) -> bytes:
    """*n* bytes from ``os.urandom``; see the module docstring for its source."""
    if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= MAX_RANDOM_BYTES:
        raise CryptoError("random byte count must be an int in [0, 65536]")
    return os.urandom(n)
