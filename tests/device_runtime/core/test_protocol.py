"""Protocol schemas, envelopes and topics; runs under MicroPython and CPython."""

from device_runtime.core import cbor, protocol
from device_runtime.core.errors import (
    InvalidField,
    ProtocolError,
    TooLarge,
    UnknownType,
    UnsupportedVersion,
)
from tests.device_runtime.core.protocol_cases import CID, ENROLL, raises

PORTABLE = True


def test_round_trip():
    envelope = protocol.decode(protocol.encode("enroll", CID, ENROLL))
    assert envelope.kind == "enroll"
    assert envelope.correlation == CID
    assert envelope.body == ENROLL


def test_topics():
    assert protocol.topic("sevenfold", "dev-1", "up") == "sevenfold/d/dev-1/up"
    assert protocol.topic("sevenfold", "dev-1", "down") == "sevenfold/d/dev-1/down"
    assert protocol.topic("sevenfold", "dev-1", "att/up") == "sevenfold/d/dev-1/att/up"
    assert protocol.topic("sevenfold", "dev-1", "att/down") == "sevenfold/d/dev-1/att/down"


def test_device_ids():
    for good in ("a", "dev-1", "0123", "x" * 63):
        assert protocol.check_device_id(good) == good
    for bad in ("", "-a", "A", "a/b", "a+", "a#", "x" * 64, 7, None, "é", "sevenfold-server"):
        raises(InvalidField, protocol.check_device_id, bad)


def test_encode_refuses_invalid_messages():
    raises(UnknownType, protocol.encode, "nope", CID, {})
    raises(InvalidField, protocol.encode, "enroll", b"short", ENROLL)
    missing = dict(ENROLL)
    del missing["rot"]
    raises(InvalidField, protocol.encode, "enroll", CID, missing)
    extra = dict(ENROLL)
    extra["admin"] = True
    raises(InvalidField, protocol.encode, "enroll", CID, extra)
    long_name = dict(ENROLL)
    long_name["hwmodel"] = "x" * 65
    raises(TooLarge, protocol.encode, "enroll", CID, long_name)


def test_integer_fields():
    for bad in (-1, True, "1", 2**64):
        body = {"seq": bad, "uptime": 0, "boot_count": 0}
        raises(InvalidField, protocol.encode, "heartbeat", CID, body)


def test_decode_rejections():
    good = {"v": 1, "t": "enroll", "id": CID, "b": ENROLL}

    def variant(key, value):
        message = dict(good)
        if value is None:
            del message[key]
        else:
            message[key] = value
        return cbor.dumps(message)

    raises(UnsupportedVersion, protocol.decode, variant("v", 2))
    raises(UnsupportedVersion, protocol.decode, variant("v", None))
    raises(UnknownType, protocol.decode, variant("t", "format-disk"))
    raises(UnknownType, protocol.decode, variant("t", 5))
    raises(InvalidField, protocol.decode, variant("id", b"x"))
    raises(InvalidField, protocol.decode, variant("b", [1]))
    raises(InvalidField, protocol.decode, variant("extra", 1))
    raises(InvalidField, protocol.decode, cbor.dumps([1, 2]))
    raises(TooLarge, protocol.decode, b"\x00" * (protocol.MAX_MESSAGE + 1))
    raises(ProtocolError, protocol.decode, b"\xff")
