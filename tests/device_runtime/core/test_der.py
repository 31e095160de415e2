"""The DER encoder's known encodings and the parser's refusals, on CPython and MicroPython."""

from device_runtime.core import der, der_parser
from device_runtime.core.errors import CryptoError

PORTABLE = True


def _refused(call, *args):
    try:
        call(*args)
    except CryptoError as exc:
        return exc.reason
    raise AssertionError("accepted " + repr(args)[:60])


def test_known_encodings():
    assert der.integer(0) == b"\x02\x01\x00"
    assert der.integer(127) == b"\x02\x01\x7f"
    assert der.integer(128) == b"\x02\x02\x00\x80"
    assert der.integer(256) == b"\x02\x02\x01\x00"
    assert der.oid("1.2.840.10045.4.3.2").hex() == "06082a8648ce3d040302"
    assert der.oid("2.23.133.5.4.1").hex() == "0606678105050401"
    assert der.oid("2.16.840.1.101.3.4.2.1").hex() == "0609608648016503040201"
    assert der.tlv(0x04, bytes(200))[:3] == b"\x04\x81\xc8"
    assert der.tlv(0x04, bytes(300))[:4] == b"\x04\x82\x01\x2c"
    assert der.generalized_time("99991231235959Z") == b"\x18\x0f99991231235959Z"
    assert der.set_of(b"\x02\x01\x02", b"\x02\x01\x01") == b"\x31\x06\x02\x01\x01\x02\x01\x02"


def test_bad_values_are_refused():
    assert "non-negative" in _refused(der.integer, -1)
    assert "non-negative" in _refused(der.integer, True)
    assert "first arcs" in _refused(der.oid, "3.1")
    assert "dotted" in _refused(der.oid, "1.x")
    assert "YYYYMMDD" in _refused(der.generalized_time, "9999123123595Z")
    assert "65-byte" in _refused(der.ec_public_key_info, bytes(64))
    assert "64 bytes" in _refused(der.ecdsa_signature, bytes(63))
    assert "low tag" in _refused(der.tlv, 0x1F, b"")


def test_reader_refuses_non_der():
    assert "truncated" in _refused(der_parser.read, b"\x30", 0, 1)
    assert "indefinite" in _refused(der_parser.read, b"\x30\x80\x00\x00", 0, 4)
    assert "shortest" in _refused(der_parser.read, b"\x04\x81\x05" + bytes(5), 0, 8)
    assert "past its container" in _refused(der_parser.read, b"\x04\x05abc", 0, 5)
    assert "high tag" in _refused(der_parser.read, b"\x1f\x01\x00", 0, 3)
    assert "over the limit" in _refused(der_parser.read, b"\x04\x84\x01\x00\x00\x00", 0, 6)
    assert der_parser.read(b"\x04\x03abc", 0, 5) == (4, 2, 5)


def test_certificate_parser_refuses_garbage():
    assert "bytes" in _refused(der_parser.certificate_fields, "cert")
    assert "trailing" in _refused(der_parser.certificate_fields, b"\x30\x00\x00")
    assert "tbsCertificate" in _refused(der_parser.certificate_fields, b"\x30\x02\x04\x00")
    assert "truncated" in _refused(der_parser.certificate_fields, b"")
