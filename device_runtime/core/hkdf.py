"""HKDF-SHA256 (RFC 5869) on the core's own HMAC, for CPython and MicroPython alike.

Roots of trust derive every key from one secret (DICE: the unique device
secret and the firmware measurement; the software backend: its seed), and the
derivation must give the same bytes on a board and in the simulator. HKDF is
the standard way to turn one secret into several independent keys, each named
by its ``info``; it needs nothing but HMAC-SHA256, which MicroPython lacks and
``device_runtime.core.hmac_sha256`` provides.
"""

from device_runtime.core.errors import CryptoError
from device_runtime.core.hmac_sha256 import DIGEST_SIZE, hmac_sha256

MAX_OUTPUT = 255 * DIGEST_SIZE
"""RFC 5869 caps the output at 255 blocks."""


def _bytes(value: object, what: str) -> None:
    if not isinstance(value, (bytes, bytearray)):
        raise CryptoError("HKDF " + what + " must be bytes")


def extract(salt: bytes, ikm: bytes) -> bytes:
    """The pseudorandom key: HMAC(salt, IKM); an empty salt means 32 zero bytes."""
    _bytes(salt, "salt")
    _bytes(ikm, "input key material")
    return hmac_sha256(bytes(salt) or bytes(DIGEST_SIZE), bytes(ikm))


def expand(prk: bytes, info: bytes, length: int) -> bytes:
    """*length* bytes of output key material from a pseudorandom key and its purpose."""
    _bytes(prk, "pseudorandom key")
    _bytes(info, "info")
    if len(prk) < DIGEST_SIZE:
        raise CryptoError("HKDF pseudorandom key must be at least 32 bytes")
    if not isinstance(length, int) or isinstance(length, bool) or not 0 < length <= MAX_OUTPUT:
        raise CryptoError("HKDF output length must be an int in [1, " + str(MAX_OUTPUT) + "]")
    out = b""
    block = b""
    counter = 1
    while len(out) < length:
        block = hmac_sha256(bytes(prk), block + bytes(info) + bytes((counter,)))
        out += block
        counter += 1
    return out[:length]


def hkdf(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    """Extract then expand: *length* bytes bound to *ikm*, *salt* and *info*."""
    return expand(extract(salt, ikm), info, length)
