"""HMAC-SHA256 (RFC 2104) built on ``hashlib.sha256`` alone.

The MicroPython unix port ships ``hashlib`` with sha256 but no ``hmac``
module, and the device core needs HMAC for deterministic ECDSA nonces
(RFC 6979) and key derivation. This module runs unchanged on CPython and
MicroPython; on CPython the standard ``hmac`` module gives the same bytes.
"""

import hashlib

BLOCK_SIZE = 64
DIGEST_SIZE = 32

_IPAD = b"\x36" * BLOCK_SIZE
_OPAD = b"\x5c" * BLOCK_SIZE


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(a[i] ^ b[i] for i in range(len(a)))


def hmac_sha256(key: bytes, message: bytes) -> bytes:
    """The 32-byte tag of *message* under *key*; keys over one block are hashed first."""
    if len(key) > BLOCK_SIZE:
        key = hashlib.sha256(key).digest()
    key = key + bytes(BLOCK_SIZE - len(key))
    inner = hashlib.sha256(_xor(key, _IPAD))
    inner.update(message)
    outer = hashlib.sha256(_xor(key, _OPAD))
    outer.update(inner.digest())
    return outer.digest()


def digests_equal(a: bytes, b: bytes) -> bool:
    """Compare two tags in time that depends on their length only.

    An early exit on the first differing byte would tell an attacker how much
    of a forged tag is right.
    """
    if len(a) != len(b):
        return False
    diff = 0
    for i in range(len(a)):
        diff |= a[i] ^ b[i]
    return diff == 0
