"""DER (X.690) for the few X.509 and PKCS#10 structures a device builds, on CPython and MicroPython.

A device with a root of trust has to speak X.509: its DeviceID key reaches a
factory CA as a PKCS#10 request, and a DICE device issues its own Alias
certificate. No ASN.1 library runs in 64 KiB, so this module encodes exactly
the types those structures use (INTEGER, BIT STRING, OCTET STRING, OBJECT
IDENTIFIER, UTF8String, GeneralizedTime, SEQUENCE, SET, context tags), always
in DER's one encoding: shortest lengths, minimal integers.

The parser is the smallest one the device needs: it reads the DeviceID
certificate the factory wrote back (to chain the Alias certificate to its
subject and to check that it certifies this device's key). It accepts DER only
(definite, shortest-form lengths; low tag numbers; no trailing bytes) and every
rejection is a :class:`CryptoError` naming what is wrong and at which offset.
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


# Parsing ---------------------------------------------------------------------


def read(data: bytes, offset: int, end: int) -> tuple[int, int, int]:
    """The element at *offset* within ``data[:end]``: ``(tag, content start, content end)``."""
    if offset + 2 > end:
        raise CryptoError("DER truncated at offset " + str(offset))
    tag = data[offset]
    if tag & 0x1F == 0x1F:
        raise CryptoError("DER high tag number at offset " + str(offset) + " is not used here")
    first = data[offset + 1]
    start = offset + 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0:
            raise CryptoError("DER indefinite length at offset " + str(offset))
        if count > 3:
            raise CryptoError("DER length at offset " + str(offset) + " is over the limit")
        if start + count > end:
            raise CryptoError("DER length truncated at offset " + str(offset))
        length = int.from_bytes(data[start : start + count], "big")
        if length < 0x80 or data[start] == 0:
            raise CryptoError("DER length at offset " + str(offset) + " is not in shortest form")
        start += count
    if start + length > end:
        raise CryptoError(
            "DER element at offset " + str(offset) + " runs past its container (truncated)"
        )
    return tag, start, start + length


def expect(data: bytes, offset: int, end: int, tag: int, what: str) -> tuple[int, int]:
    """Like :func:`read` for an element that must have *tag*; returns its content span."""
    found, start, stop = read(data, offset, end)
    if found != tag:
        raise CryptoError(
            what + " at offset " + str(offset) + " has tag " + hex(found) + ", not " + hex(tag)
        )
    return start, stop


def certificate_fields(cert: bytes) -> dict[str, bytes]:
    """The parts of an ES256 X.509 certificate an issuing device needs, as raw bytes.

    Returns ``subject`` (the whole Name element, to copy as an issuer),
    ``not_before`` (the whole Time element) and ``public_key`` (the 65-byte
    point). The signature is not checked: the device reads a certificate it
    was given by its factory, to chain to it, not to trust it.
    """
    if not isinstance(cert, (bytes, bytearray)):
        raise CryptoError("certificate must be DER bytes")
    outer_start, outer_end = expect(cert, 0, len(cert), SEQUENCE, "certificate")
    if outer_end != len(cert):
        raise CryptoError("certificate has " + str(len(cert) - outer_end) + " trailing bytes")
    tbs, tbs_end = expect(cert, outer_start, outer_end, SEQUENCE, "tbsCertificate")
    tag, _, stop = read(cert, tbs, tbs_end)
    if tag == 0xA0:
        tbs = stop  # version
    tbs = expect(cert, tbs, tbs_end, INTEGER, "serialNumber")[1]
    tbs = expect(cert, tbs, tbs_end, SEQUENCE, "signature algorithm")[1]
    tbs = expect(cert, tbs, tbs_end, SEQUENCE, "issuer")[1]
    validity, validity_end = expect(cert, tbs, tbs_end, SEQUENCE, "validity")
    tag, _, not_before_end = read(cert, validity, validity_end)
    if tag not in (0x17, GENERALIZED_TIME):
        raise CryptoError("notBefore at offset " + str(validity) + " is not a Time")
    subject_start = validity_end
    subject_end = expect(cert, subject_start, tbs_end, SEQUENCE, "subject")[1]
    spki_start, spki_end = expect(cert, subject_end, tbs_end, SEQUENCE, "subjectPublicKeyInfo")
    algorithm_end = expect(cert, spki_start, spki_end, SEQUENCE, "key algorithm")[1]
    if cert[spki_start:algorithm_end] != algorithm(OID_EC_PUBLIC_KEY, oid(OID_PRIME256V1)):
        raise CryptoError("certificate key is not an id-ecPublicKey on prime256v1")
    key_start, key_end = expect(cert, algorithm_end, spki_end, BIT_STRING, "subjectPublicKey")
    if key_end - key_start != 66 or cert[key_start] != 0 or cert[key_start + 1] != 4:
        raise CryptoError("certificate key is not an uncompressed P-256 point")
    return {
        "subject": bytes(cert[subject_start:subject_end]),
        "not_before": bytes(cert[validity:not_before_end]),
        "public_key": bytes(cert[key_start + 1 : key_end]),
    }
