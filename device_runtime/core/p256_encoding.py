"""NIST P-256 keys and signatures as bytes: the checks every port makes before any arithmetic.

Both crypto ports (OpenSSL on CPython, ``device_runtime.core.p256`` under
MicroPython) refuse the same malformed keys and signatures with the same
reasons because both decode them here first. Kept apart from the arithmetic
so that a device whose signatures are computed elsewhere (a TPM, OpenSSL)
trusts these few lines and not the pure-Python engine (docs/tcb.md). Runs
unchanged on CPython and MicroPython.
"""

from device_runtime.core.errors import CryptoError

# Curve y^2 = x^3 - 3x + B over GF(P) of prime order N (its generator is the arithmetic's).
P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B

SCALAR_SIZE = 32
POINT_SIZE = 65
SIGNATURE_SIZE = 64
DIGEST_SIZE = 32


def bytes_like(value: object, what: str) -> None:
    if not isinstance(value, (bytes, bytearray)):
        raise CryptoError(what + " must be bytes")


def private_int(private_scalar: bytes) -> int:
    """The scalar of a 32-byte private key, refused unless it lies in [1, n-1]."""
    bytes_like(private_scalar, "private key")
    if len(private_scalar) != SCALAR_SIZE:
        raise CryptoError("private key must be 32 bytes")
    d = int.from_bytes(private_scalar, "big")
    if not 0 < d < N:
        raise CryptoError("private key out of range [1, n-1]")
    return d


def encode_point(x: int, y: int) -> bytes:
    return b"\x04" + x.to_bytes(SCALAR_SIZE, "big") + y.to_bytes(SCALAR_SIZE, "big")


def parse_public_point(public_point: bytes) -> tuple[int, int]:
    """Decode and validate an uncompressed SEC1 point, returning ``(x, y)``.

    An unchecked point lets an attacker pick a weak curve (invalid-curve
    attacks), so every key is checked to lie on P-256 before use. Compressed
    points are refused because COSE and X.509 in this system carry both
    coordinates.
    """
    bytes_like(public_point, "public key")
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
    bytes_like(signature, "signature")
    if len(signature) != SIGNATURE_SIZE:
        raise CryptoError("signature must be 64 bytes (raw r || s)")
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:], "big")
    if not 0 < r < N:
        raise CryptoError("signature r out of range [1, n-1]")
    if not 0 < s < N:
        raise CryptoError("signature s out of range [1, n-1]")
    return r, s
