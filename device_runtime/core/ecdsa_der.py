"""A DER ``Ecdsa-Sig-Value`` (RFC 3279) read back to raw ``r || s``, refusing any other encoding.

MCUboot images and TUF metadata carry P-256 signatures in DER. OpenSSL refuses
every encoding but DER's one (short-form lengths, minimal non-negative
integers, nothing trailing), and so does this, so both ports accept the same
signatures. Apart from the DER codec (``der``, ``der_parser``) so that a device
checking signatures does not load a certificate parser into its small heap.
"""

from device_runtime.core.errors import CryptoError


def _integer(signature: bytes, offset: int, what: str) -> tuple[bytes, int]:
    if offset + 2 > len(signature) or signature[offset] != 0x02:
        raise CryptoError("signature " + what + " is not a DER INTEGER")
    length = signature[offset + 1]
    start, end = offset + 2, offset + 2 + length
    if not 0 < length <= 33 or end > len(signature):
        raise CryptoError("signature " + what + " has a bad length")
    if signature[start] & 0x80 or (
        length > 1 and not signature[start] and signature[start + 1] < 0x80
    ):
        raise CryptoError("signature " + what + " is negative or not minimally encoded")
    if length == 33 and signature[start]:
        raise CryptoError("signature " + what + " is over 32 bytes")
    value = signature[start:end][-32:]  # a 33rd byte is the zero that keeps it positive
    return bytes(32 - len(value)) + value, end


def raw_signature(signature: bytes) -> bytes:
    """The 64-byte ``r || s`` of the DER *signature*, or CryptoError saying what is wrong."""
    if not isinstance(signature, (bytes, bytearray)) or len(signature) < 8:
        raise CryptoError("signature is not DER bytes")
    if signature[0] != 0x30 or signature[1] != len(signature) - 2:
        raise CryptoError("signature is not one DER SEQUENCE of its length")
    r, offset = _integer(signature, 2, "r")
    s, offset = _integer(signature, offset, "s")
    if offset != len(signature):
        raise CryptoError("signature has bytes after s")
    return r + s
