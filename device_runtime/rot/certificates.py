"""The X.509 a derived-key root of trust writes itself: its CSR and the DICE Alias certificate.

Shared by the DICE and software roots of trust; built with ``core.der`` so it
runs on MicroPython. Every signature is ES256 by a key of the root of trust,
through its ``sign()``: the private key is never in this module.
"""

import hashlib

from device_runtime.core import der
from device_runtime.core.errors import RootOfTrustError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from device_runtime.core.port_types import Key

OID_TCB_INFO = "2.23.133.5.4.1"
OID_SHA256 = "2.16.840.1.101.3.4.2.1"
OID_KEY_USAGE = "2.5.29.15"
NOT_AFTER = "99991231235959Z"
"""RFC 5280 4.1.2.5: no well-defined expiration date; a device without a clock can state it."""
ALIAS_UNIT = "DICE Alias"
"""organizationalUnitName of Alias subjects: without it the Alias subject would equal its
issuer's (both CN = the device id) and OpenSSL would take the certificate for self-issued."""
MAX_COMMON_NAME = 64
"""ub-common-name, RFC 5280 appendix A."""


def _common_name(text: str) -> str:
    if not isinstance(text, str) or not 0 < len(text) <= MAX_COMMON_NAME:
        raise RootOfTrustError("a common name is a str of 1 to 64 characters")
    return text


def _signed(key: "Key", body: bytes) -> bytes:
    """``SEQUENCE { body, ecdsa-with-SHA256, BIT STRING signature }``: a certificate or a CSR."""
    signature = der.ecdsa_signature(key.sign(body))
    return der.sequence(body, der.algorithm(der.OID_ECDSA_WITH_SHA256), der.bit_string(signature))


def csr(key: "Key", common_name: str) -> bytes:
    """DER PKCS#10 (RFC 2986) for *key*, naming *common_name*, signed by *key* itself."""
    subject = der.name((der.OID_COMMON_NAME, _common_name(common_name)))
    info = der.sequence(
        der.integer(0), subject, der.ec_public_key_info(key.public_key()), der.context(0, b"")
    )
    return _signed(key, info)


def _small_int(value: int, what: str) -> bytes:
    """The content octets of a small INTEGER (an IMPLICIT tag replaces its header)."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << 63:
        raise RootOfTrustError("TcbInfo " + what + " must be an int in [0, 2^63)")
    return der.integer(value)[2:]


def tcb_info(vendor: str, model: str, version: str, svn: int, layer: int, fwid: bytes) -> bytes:
    """DiceTcbInfo (TCG DICE Attestation Architecture): vendor [0], model [1], version [2],
    svn [3], layer [4], fwids [6] with one SHA-256 FWID; every field IMPLICIT."""
    if not isinstance(fwid, (bytes, bytearray)) or len(fwid) != 32:
        raise RootOfTrustError("a firmware id is a 32-byte SHA-256 digest")
    fields = b""
    for number, text in ((0, vendor), (1, model), (2, version)):
        if not isinstance(text, str) or not 0 < len(text) <= MAX_COMMON_NAME:
            raise RootOfTrustError("TcbInfo vendor, model and version: str of 1 to 64 characters")
        fields += der.context(number, text.encode("utf-8"), constructed=False)
    fields += der.context(3, _small_int(svn, "svn"), constructed=False)
    fields += der.context(4, _small_int(layer, "layer"), constructed=False)
    fields += der.context(6, der.sequence(der.oid(OID_SHA256), der.octet_string(bytes(fwid))))
    return der.sequence(fields)


def alias_certificate(
    issuer_key: "Key",
    issuer_certificate: bytes,
    alias_key: "Key",
    common_name: str,
    tcb: bytes,
) -> bytes:
    """The Alias certificate, issued on the device by the DeviceID key.

    Its issuer is the DeviceID certificate's subject, copied byte for byte so
    the chain links; its notBefore is that certificate's (the device has no
    clock to state another); keyUsage digitalSignature; the DiceTcbInfo
    extension *tcb* (non-critical, so verifiers that do not know it still
    build the chain). The serial number is derived from the Alias key, so one
    firmware measurement always gives the same serial.
    """
    # The parser is imported here, not with the encoder: a device that only sends its CSR
    # never needs it in RAM.
    from device_runtime.core import der_parser

    fields = der_parser.certificate_fields(issuer_certificate)
    if fields["public_key"] != issuer_key.public_key():
        raise RootOfTrustError("the DeviceID certificate certifies another key, not this device's")
    alias_public = alias_key.public_key()
    serial = int.from_bytes(hashlib.sha256(alias_public).digest()[:16], "big") >> 1 | 1
    key_usage = der.sequence(
        der.oid(OID_KEY_USAGE), der.tlv(0x01, b"\xff"), der.octet_string(der.tlv(0x03, b"\x07\x80"))
    )
    extension = der.sequence(der.oid(OID_TCB_INFO), der.octet_string(tcb))
    tbs = der.sequence(
        der.context(0, der.integer(2)),
        der.integer(serial),
        der.algorithm(der.OID_ECDSA_WITH_SHA256),
        fields["subject"],
        der.sequence(fields["not_before"], der.generalized_time(NOT_AFTER)),
        der.name(
            (der.OID_COMMON_NAME, _common_name(common_name)),
            (der.OID_ORGANIZATIONAL_UNIT, ALIAS_UNIT),
        ),
        der.ec_public_key_info(alias_public),
        der.context(3, der.sequence(key_usage, extension)),
    )
    return _signed(issuer_key, tbs)
