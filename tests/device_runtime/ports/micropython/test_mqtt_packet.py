"""The MQTT 3.1.1 codec against hand-assembled packets, under CPython and MicroPython alike.

The expected bytes are written out from the spec's field layout rather than
produced by the encoder, so an encoder bug cannot agree with itself. Every
hostile input must end in a ``TransportError`` whose reason names the fault.
"""

from device_runtime.core.errors import TransportError
from device_runtime.ports.micropython import mqtt_packet as mp

PORTABLE = True

LIMIT = 1024


def _fails(call, *args):
    """Return the TransportError reason *call* raised; fail if it raised nothing or else."""
    try:
        call(*args)
    except TransportError as exc:
        return exc.reason
    raise AssertionError("no TransportError from " + repr(args))


def _split(data, limit=LIMIT):
    return mp.split_packet(data, limit)


def test_connect_is_clean_session_without_credentials():
    packet = mp.encode_connect("dev-a", 60)
    expected = b"\x10\x11\x00\x04MQTT\x04\x02\x00\x3c\x00\x05dev-a"
    assert packet == expected


def test_connect_rejects_bad_arguments():
    assert "keepalive" in _fails(mp.encode_connect, "dev-a", 70000)
    assert "keepalive" in _fails(mp.encode_connect, "dev-a", -1)
    assert "empty" in _fails(mp.encode_connect, "", 60)
    assert "str" in _fails(mp.encode_connect, b"dev-a", 60)
    assert "U+0000" in _fails(mp.encode_connect, "dev\x00a", 60)


def test_publish_qos1_layout():
    packet = mp.encode_publish("a/b", b"hi", qos=1, packet_id=0x0102)
    assert packet == b"\x32\x09\x00\x03a/b\x01\x02hi"


def test_publish_qos0_has_no_packet_id():
    assert mp.encode_publish("t", b"", qos=0) == b"\x30\x03\x00\x01t"
    assert "no packet id" in _fails(mp.encode_publish, "t", b"", 0, 5)


def test_publish_rejects_bad_topics_and_ids():
    assert "wildcard" in _fails(mp.encode_publish, "a/+", b"", 1, 1)
    assert "wildcard" in _fails(mp.encode_publish, "a/#", b"", 1, 1)
    assert "empty" in _fails(mp.encode_publish, "", b"", 1, 1)
    assert "packet id" in _fails(mp.encode_publish, "t", b"", 1, 0)
    assert "packet id" in _fails(mp.encode_publish, "t", b"", 1, 65536)
    assert "QoS" in _fails(mp.encode_publish, "t", b"", 2, 1)
    assert "bytes" in _fails(mp.encode_publish, "t", "text", 1, 1)


def test_long_payload_uses_multi_byte_remaining_length():
    payload = b"x" * 200
    packet = mp.encode_publish("t", payload, qos=1, packet_id=1)
    assert packet[:3] == b"\x32\xcd\x01"
    ptype, flags, body, rest = _split(packet)
    assert (ptype, flags, rest) == (mp.PUBLISH, 2, b"")
    assert mp.decode_publish(flags, body) == ("t", payload, 1, 1)


def test_remaining_length_boundaries():
    assert mp.encode_remaining_length(0) == b"\x00"
    assert mp.encode_remaining_length(127) == b"\x7f"
    assert mp.encode_remaining_length(128) == b"\x80\x01"
    assert mp.encode_remaining_length(16383) == b"\xff\x7f"
    assert mp.encode_remaining_length(16384) == b"\x80\x80\x01"
    assert mp.encode_remaining_length(268435455) == b"\xff\xff\xff\x7f"
    assert "range" in _fails(mp.encode_remaining_length, 268435456)


def test_subscribe_puback_ping_disconnect_layouts():
    assert mp.encode_subscribe(7, "s/d/x/down", 1) == b"\x82\x0f\x00\x07\x00\x0as/d/x/down\x01"
    assert mp.encode_puback(0xBEEF) == b"\x40\x02\xbe\xef"
    assert mp.encode_pingreq() == b"\xc0\x00"
    assert mp.encode_disconnect() == b"\xe0\x00"


def test_subscribe_filter_wildcards_are_checked():
    assert mp.encode_subscribe(1, "a/+/c", 1)[-6:] == b"a/+/c\x01"
    assert mp.encode_subscribe(1, "#", 0)[-2:] == b"#\x00"
    assert "'#'" in _fails(mp.encode_subscribe, 1, "a/#/c", 1)
    assert "'#'" in _fails(mp.encode_subscribe, 1, "a#", 1)
    assert "'+'" in _fails(mp.encode_subscribe, 1, "a+/c", 1)
    assert "QoS" in _fails(mp.encode_subscribe, 1, "a", 3)


def test_decode_connack_codes():
    ptype, _, body, _ = _split(b"\x20\x02\x00\x00")
    assert ptype == mp.CONNACK
    assert mp.decode_connack(body) == (False, 0)
    assert mp.decode_connack(b"\x01\x00") == (True, 0)
    assert mp.decode_connack(b"\x00\x05") == (False, 5)
    assert mp.refusal_reason(5) == "not authorized (code 5)"
    assert mp.refusal_reason(2) == "client identifier rejected (code 2)"
    assert "unknown return code" in _fails(mp.decode_connack, b"\x00\x06")
    assert "reserved" in _fails(mp.decode_connack, b"\x02\x00")
    assert "session" in _fails(mp.decode_connack, b"\x01\x05")
    assert "2 bytes" in _fails(mp.decode_connack, b"\x00")


def test_decode_publish_qos0_and_qos1():
    topic, payload, qos, packet_id = mp.decode_publish(0, b"\x00\x03a/b" + b"data")
    assert (topic, payload, qos, packet_id) == ("a/b", b"data", 0, 0)
    assert mp.decode_publish(2, b"\x00\x01t\x00\x09") == ("t", b"", 1, 9)
    assert mp.decode_publish(3, b"\x00\x01t\x00\x09x") == ("t", b"x", 1, 9)


def test_decode_publish_rejects_hostile_fields():
    assert "QoS 3" in _fails(mp.decode_publish, 6, b"\x00\x01t")
    assert "DUP" in _fails(mp.decode_publish, 8, b"\x00\x01t")
    assert "topic length" in _fails(mp.decode_publish, 0, b"\x00")
    assert "inside its topic" in _fails(mp.decode_publish, 0, b"\x00\x05ab")
    assert "empty topic" in _fails(mp.decode_publish, 0, b"\x00\x00")
    assert "packet id" in _fails(mp.decode_publish, 2, b"\x00\x01t\x00")
    assert "packet id 0" in _fails(mp.decode_publish, 2, b"\x00\x01t\x00\x00")
    assert "wildcards" in _fails(mp.decode_publish, 0, b"\x00\x03a/#")
    assert "UTF-8" in _fails(mp.decode_publish, 0, b"\x00\x02\xc3\x28")
    assert "U+0000" in _fails(mp.decode_publish, 0, b"\x00\x02a\x00")


def test_topic_utf8_is_strict():
    for bad in (
        b"\xc0\x80",
        b"\xe0\x80\x80",
        b"\xed\xa0\x80",
        b"\xf4\x90\x80\x80",
        b"\xf8\x88\x80\x80\x80",
        b"\x80",
        b"\xe2\x82",
        b"\xff",
    ):
        body = len(bad).to_bytes(2, "big") + bad
        assert "UTF-8" in _fails(mp.decode_publish, 0, body)
    good = "t\u00e9/\u20ac/\U0001f600".encode()
    body = len(good).to_bytes(2, "big") + good
    assert mp.decode_publish(0, body)[0] == "t\u00e9/\u20ac/\U0001f600"


def test_decode_puback_suback_pingresp():
    assert mp.decode_puback(b"\x12\x34") == 0x1234
    assert "packet id 0" in _fails(mp.decode_puback, b"\x00\x00")
    assert "2 bytes" in _fails(mp.decode_puback, b"\x00\x01\x00")
    assert mp.decode_suback(b"\x00\x02\x01") == (2, b"\x01")
    assert mp.decode_suback(b"\x00\x02\x80") == (2, b"\x80")
    assert "without return codes" in _fails(mp.decode_suback, b"\x00\x02")
    assert "invalid return code" in _fails(mp.decode_suback, b"\x00\x02\x03")
    assert "packet id" in _fails(mp.decode_suback, b"\x00")
    assert mp.decode_pingresp(b"") is None
    assert "body" in _fails(mp.decode_pingresp, b"\x00")


def test_header_rejects_reserved_types_and_flags():
    assert "reserved packet type 0" in _fails(_split, b"\x00\x00")
    assert "reserved packet type 15" in _fails(_split, b"\xf0\x00")
    assert "reserved flag bits set in PUBACK" in _fails(_split, b"\x41\x02\x00\x01")
    assert "reserved flag bits set in CONNACK" in _fails(_split, b"\x28\x02\x00\x00")
    assert "reserved flag bits set in PINGRESP" in _fails(_split, b"\xd1\x00")
    assert "QoS 3" in _fails(_split, b"\x36\x03\x00\x01t")
    assert _split(b"\x62\x02\x00\x01")[0] == mp.PUBREL


def test_header_rejects_oversized_before_reading_body():
    assert "over the 1024-byte limit" in _fails(_split, b"\x30\x81\x08")
    assert "over the 10-byte limit" in _fails(_split, b"\x30\x0b", 10)
    assert "longer than 4 bytes" in _fails(_split, b"\x30\xff\xff\xff\xff\x01", 1 << 30)
    ptype, _, body, _ = _split(b"\x30\x0a" + b"\x00\x01t" + b"1234567", 10)
    assert ptype == mp.PUBLISH and len(body) == 10


def test_truncated_input_is_named():
    assert "fixed header" in _fails(_split, b"")
    assert "remaining length" in _fails(_split, b"\x30")
    assert "remaining length" in _fails(_split, b"\x30\x80")
    assert "PUBLISH body" in _fails(_split, b"\x30\x05\x00\x01")
    assert "CONNACK body" in _fails(_split, b"\x20\x02\x00")


def test_split_returns_the_rest_of_a_stream():
    stream = b"\xd0\x00\x40\x02\x00\x07\x90\x03\x00\x01\x01"
    ptype, _, body, stream = _split(stream)
    assert (ptype, body) == (mp.PINGRESP, b"")
    ptype, _, body, stream = _split(stream)
    assert (ptype, mp.decode_puback(body)) == (mp.PUBACK, 7)
    ptype, _, body, stream = _split(stream)
    assert (ptype, mp.decode_suback(body), stream) == (mp.SUBACK, (1, b"\x01"), b"")


def test_every_truncation_of_a_valid_stream_is_an_error():
    packet = mp.encode_publish("sevenfold/d/dev-a/down", b"payload", qos=1, packet_id=3)
    for cut in range(len(packet)):
        assert "truncated" in _fails(_split, packet[:cut])
