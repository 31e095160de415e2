"""The DER (X.690) parser for the one certificate a device reads, on CPython and MicroPython.

It reads the DeviceID certificate the factory wrote back, to chain the DICE
Alias certificate to its subject and to check that it certifies this device's
key. It accepts DER only (definite, shortest-form lengths; low tag numbers; no
trailing bytes) and every rejection is a :class:`CryptoError` naming what is
wrong and at which offset. Apart from the encoder (``device_runtime.core.der``)
so that a device which only builds a CSR never loads it into its heap.
"""

from device_runtime.core import der
from device_runtime.core.errors import CryptoError


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
    outer_start, outer_end = expect(cert, 0, len(cert), der.SEQUENCE, "certificate")
    if outer_end != len(cert):
        raise CryptoError("certificate has " + str(len(cert) - outer_end) + " trailing bytes")
    tbs, tbs_end = expect(cert, outer_start, outer_end, der.SEQUENCE, "tbsCertificate")
    tag, _, stop = read(cert, tbs, tbs_end)
    if tag == 0xA0:
        tbs = stop  # version
    tbs = expect(cert, tbs, tbs_end, der.INTEGER, "serialNumber")[1]
    tbs = expect(cert, tbs, tbs_end, der.SEQUENCE, "signature algorithm")[1]
    tbs = expect(cert, tbs, tbs_end, der.SEQUENCE, "issuer")[1]
    validity, validity_end = expect(cert, tbs, tbs_end, der.SEQUENCE, "validity")
    tag, _, not_before_end = read(cert, validity, validity_end)
    if tag not in (0x17, der.GENERALIZED_TIME):
        raise CryptoError("notBefore at offset " + str(validity) + " is not a Time")
    subject_start = validity_end
    subject_end = expect(cert, subject_start, tbs_end, der.SEQUENCE, "subject")[1]
    spki_start, spki_end = expect(cert, subject_end, tbs_end, der.SEQUENCE, "subjectPublicKeyInfo")
    algorithm_end = expect(cert, spki_start, spki_end, der.SEQUENCE, "key algorithm")[1]
    p256_key = der.algorithm(der.OID_EC_PUBLIC_KEY, der.oid(der.OID_PRIME256V1))
    if cert[spki_start:algorithm_end] != p256_key:
        raise CryptoError("certificate key is not an id-ecPublicKey on prime256v1")
    key_start, key_end = expect(cert, algorithm_end, spki_end, der.BIT_STRING, "subjectPublicKey")
    if key_end - key_start != 66 or cert[key_start] != 0 or cert[key_start + 1] != 4:
        raise CryptoError("certificate key is not an uncompressed P-256 point")
    return {
        "subject": bytes(cert[subject_start:subject_end]),
        "not_before": bytes(cert[validity:not_before_end]),
        "public_key": bytes(cert[key_start + 1 : key_end]),
    }
