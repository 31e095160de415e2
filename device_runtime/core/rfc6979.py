"""Deterministic ECDSA nonces for P-256 with HMAC-SHA256 (RFC 6979 section 3.2).

A nonce drawn from a weak or repeated random source reveals the private key
from two signatures; deriving it from the key and the digest removes that
failure mode. Specialised to qlen = hlen = 256, where bits2int is a plain
big-endian read. Runs unchanged on CPython and MicroPython.
"""

from device_runtime.core.hmac_sha256 import hmac_sha256
from device_runtime.core.p256_encoding import N


class Nonces:
    """The candidate nonces in [1, n-1] for one key and digest, in RFC order."""

    def __init__(self, d: int, digest: bytes) -> None:
        h = int.from_bytes(digest, "big") % N
        seed = d.to_bytes(32, "big") + h.to_bytes(32, "big")
        v = b"\x01" * 32
        key = hmac_sha256(bytes(32), v + b"\x00" + seed)
        v = hmac_sha256(key, v)
        key = hmac_sha256(key, v + b"\x01" + seed)
        self._key = key
        self._v = hmac_sha256(key, v)

    def next(self) -> int:
        while True:
            self._v = hmac_sha256(self._key, self._v)
            k = int.from_bytes(self._v, "big")
            self._key = hmac_sha256(self._key, self._v + b"\x00")
            self._v = hmac_sha256(self._key, self._v)
            if 0 < k < N:
                return k
