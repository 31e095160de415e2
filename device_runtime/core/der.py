"""DER (X.690) for the few X.509 and PKCS#10 structures a device builds, on CPython and MicroPython.

A device with a root of trust has to speak X.509: its DeviceID key reaches a
factory CA as a PKCS#10 request, and a DICE device issues its own Alias
certificate. No ASN.1 library runs in 64 KiB, so this module encodes exactly
the types those structures use (INTEGER, BIT STRING, OCTET STRING, OBJECT
IDENTIFIER, UTF8String, GeneralizedTime, SEQUENCE, SET, context tags), always
in DER's one encoding: shortest lengths, minimal integers.

Encoding only: the parser is ``device_runtime.core.der_parser``, apart so that
a device which only builds requests and certificates does not hold it in RAM.
"""

from device_runtime.core.errors import CryptoError

INTEGER = 0x02
BIT_STRING = 0x03
OCTET_STRING = 0x04
OID = 0x06
UTF8_STRING = 0x0C
GENERALIZED_TIME = 0x18
SEQUENCE = 0x30
SET = 0x31

MAX_LENGTH = 0xFFFFFF
"""Largest content this module encodes or accepts (16 MiB; a certificate is a few hundred bytes)."""

OID_EC_PUBLIC_KEY = "1.2.840.10045.2.1"
OID_PRIME256V1 = "1.2.840.10045.3.1.7"
OID_ECDSA_WITH_SHA256 = "1.2.840.10045.4.3.2"
OID_COMMON_NAME = "2.5.4.3"
OID_ORGANIZATIONAL_UNIT = "2.5.4.11"


def _byte_length(n: int) -> int:
    """Bytes needed for the unsigned *n*, at least one (MicroPython's int has no bit_length)."""
    size = 1
    while n >> (8 * size):
        size += 1
    return size


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    if n > MAX_LENGTH:
        raise CryptoError("DER content of " + str(n) + " bytes is over the limit")
    body = n.to_bytes(_byte_length(n), "big")
    return bytes((0x80 | len(body),)) + body


def tlv(tag: int, content: bytes) -> bytes:
    """One element: *tag* (a single identifier byte), its DER length, *content*."""
    if not isinstance(tag, int) or not 0 <= tag <= 0xFF or tag & 0x1F == 0x1F:
        raise CryptoError("DER tag must be one identifier byte with a low tag number")
    if not isinstance(content, (bytes, bytearray)):
        raise CryptoError("DER content must be bytes")
    return bytes((tag,)) + _length(len(content)) + bytes(content)


def sequence(*items: bytes) -> bytes:
    return tlv(SEQUENCE, b"".join(items))


def set_of(*items: bytes) -> bytes:
    """A SET OF; DER sorts the encodings, so two encoders agree byte for byte."""
    return tlv(SET, b"".join(sorted(items)))


def integer(value: int) -> bytes:
    """A non-negative INTEGER in its minimal two's-complement form."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise CryptoError("DER integers here are non-negative ints")
    size = _byte_length(value)
    if value >> (8 * size - 1):
        size += 1  # a leading zero byte keeps the sign bit clear
    body = value.to_bytes(size, "big")
    return tlv(INTEGER, body)


def unsigned(big_endian: bytes) -> bytes:
    """An INTEGER from unsigned big-endian bytes, e.g. one half of a raw ECDSA signature."""
    return integer(int.from_bytes(big_endian, "big"))


def bit_string(data: bytes) -> bytes:
    """A BIT STRING of whole bytes (no unused bits): keys and signatures."""
    return tlv(BIT_STRING, b"\x00" + data)


def octet_string(data: bytes) -> bytes:
    return tlv(OCTET_STRING, data)


def utf8_string(text: str) -> bytes:
    if not isinstance(text, str):
        raise CryptoError("DER text must be a str")
    return tlv(UTF8_STRING, text.encode("utf-8"))


def generalized_time(stamp: str) -> bytes:
    """GeneralizedTime ``YYYYMMDDHHMMSSZ``, the form RFC 5280 requires (no fractions)."""
    if not isinstance(stamp, str) or len(stamp) != 15 or stamp[14] != "Z":
        raise CryptoError("GeneralizedTime must be YYYYMMDDHHMMSSZ")
    for ch in stamp[:14]:
        if not "0" <= ch <= "9":
            raise CryptoError("GeneralizedTime must be YYYYMMDDHHMMSSZ")
    return tlv(GENERALIZED_TIME, stamp.encode())


def context(number: int, content: bytes, constructed: bool = True) -> bytes:
    """A context-specific tag ``[number]``: EXPLICIT (constructed) or IMPLICIT over a primitive."""
    if not isinstance(number, int) or not 0 <= number < 31:
        raise CryptoError("context tag number must be in [0, 30]")
    return tlv((0xA0 if constructed else 0x80) | number, content)


def oid(dotted: str) -> bytes:
    """An OBJECT IDENTIFIER from its dotted form, e.g. ``"2.23.133.5.4.1"``."""
    if not isinstance(dotted, str):
        raise CryptoError("OID must be a dotted str")
    try:
        arcs = [int(part) for part in dotted.split(".")]
    except ValueError:
        raise CryptoError("OID " + repr(dotted) + " is not dotted decimal") from None
    if len(arcs) < 2 or arcs[0] > 2 or (arcs[0] < 2 and arcs[1] > 39) or min(arcs) < 0:
        raise CryptoError("OID " + repr(dotted) + " has invalid first arcs")
    out = bytearray()
    for arc in [arcs[0] * 40 + arcs[1]] + arcs[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        chunk.reverse()
        out += bytes(chunk)
    return tlv(OID, bytes(out))


def algorithm(dotted: str, parameters: bytes = b"") -> bytes:
    """An AlgorithmIdentifier; ecdsa-with-SHA256 has its parameters absent (RFC 5758)."""
    return sequence(oid(dotted), parameters)


def ec_public_key_info(point: bytes) -> bytes:
    """SubjectPublicKeyInfo of an uncompressed P-256 point (RFC 5480)."""
    if not isinstance(point, (bytes, bytearray)) or len(point) != 65 or point[0] != 4:
        raise CryptoError("public key must be a 65-byte uncompressed SEC1 point")
    return sequence(algorithm(OID_EC_PUBLIC_KEY, oid(OID_PRIME256V1)), bit_string(point))


def ecdsa_signature(raw: bytes) -> bytes:
    """The DER ``Ecdsa-Sig-Value`` of a raw ``r || s`` signature (64 bytes)."""
    if not isinstance(raw, (bytes, bytearray)) or len(raw) != 64:
        raise CryptoError("signature must be 64 bytes (raw r || s)")
    return sequence(unsigned(raw[:32]), unsigned(raw[32:]))


def name(*attributes: tuple[str, str]) -> bytes:
    """An X.501 Name, one attribute per RDN, in the order given: ``(oid, text)`` pairs."""
    return sequence(*[set_of(sequence(oid(o), utf8_string(v))) for o, v in attributes])
