"""Ed25519 signature verification (RFC 8032) in pure Python, on CPython and MicroPython.

TUF repositories sign with Ed25519 keys as often as with ECDSA, and a board has
no library for it. Verification only: ``[S]B == R + [k]A`` (the cofactorless
equation, as OpenSSL checks it) in extended twisted Edwards coordinates, with
S below the group order and both points decoded canonically. Nothing secret is
handled, so it need not be constant-time.
"""

from device_runtime.core import sha512
from device_runtime.core.errors import CryptoError

_P = 2**255 - 19
_L = 2**252 + 27742317777372353535851937790883648493
_D = -121665 * pow(121666, _P - 2, _P) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    _Point = tuple[int, int, int, int]

    from device_runtime.core.port_types import Hasher


def _add(a: "_Point", b: "_Point") -> "_Point":
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    p = _P
    e1 = (y1 - x1) * (y2 - x2) % p
    h1 = (y1 + x1) * (y2 + x2) % p
    c = 2 * t1 * t2 * _D % p
    d = 2 * z1 * z2 % p
    e, f, g, h = h1 - e1, d - c, d + c, h1 + e1
    return e * f % p, g * h % p, f * g % p, e * h % p


def _multiply(scalar: int, point: "_Point") -> "_Point":
    result = (0, 1, 1, 0)
    while scalar:
        if scalar & 1:
            result = _add(result, point)
        point = _add(point, point)
        scalar >>= 1
    return result


def _decode(encoded: bytes) -> "_Point":
    y = int.from_bytes(encoded, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    if y >= _P:
        raise CryptoError("Ed25519 point is not canonically encoded")
    x2 = (y * y - 1) * pow(_D * y * y + 1, _P - 2, _P) % _P
    x = pow(x2, (_P + 3) // 8, _P)
    if (x * x - x2) % _P:
        x = x * _SQRT_M1 % _P
    if (x * x - x2) % _P or (x == 0 and sign):
        raise CryptoError("Ed25519 point is not on the curve")
    if x & 1 != sign:
        x = _P - x
    return x, y, 1, x * y % _P


_BASE = _decode(bytes([0x58]) + bytes([0x66]) * 31)


def verify(public_key: bytes, signature: bytes, feed: "Callable[[Hasher], object]") -> None:
    """Return if *signature* (64 bytes) is *public_key*'s (32 bytes), else raise CryptoError.

    The message is what *feed* writes into the SHA-512 it is handed, so a
    caller that makes the message piece by piece need not hold it whole.
    """
    if len(public_key) != 32 or len(signature) != 64:
        raise CryptoError("Ed25519 keys are 32 bytes and signatures 64")
    a = _decode(public_key)
    r = _decode(signature[:32])
    s = int.from_bytes(signature[32:], "little")
    if s >= _L:
        raise CryptoError("Ed25519 signature scalar is not below the group order")
    hasher = sha512.new(signature[:32] + public_key)
    feed(hasher)
    k = int.from_bytes(hasher.digest(), "little") % _L
    left = _multiply(s, _BASE)
    right = _add(r, _multiply(k, a))
    if (left[0] * right[2] - right[0] * left[2]) % _P or (
        left[1] * right[2] - right[1] * left[2]
    ) % _P:
        raise CryptoError("signature does not match")
