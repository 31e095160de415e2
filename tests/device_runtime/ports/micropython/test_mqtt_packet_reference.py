"""The portable MQTT codec against CPython references, over inputs hypothesis makes up.

CPython's UTF-8 decoder is the reference for topic checking (MicroPython's
own decoder is laxer, which is why the codec carries its own), and a
``struct``-based encoder written from the spec is the reference for packet
layout. Arbitrary bytes must only ever produce a ``TransportError``.
"""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from device_runtime.core.errors import TransportError
from device_runtime.ports.micropython import mqtt_packet as mp

LIMIT = 4096
FAST = settings(max_examples=300, deadline=None)

topic_levels = st.text(
    alphabet=st.characters(blacklist_characters="+#/\x00", blacklist_categories=("Cs",)),
    min_size=1,
    max_size=12,
)
topics = st.lists(topic_levels, min_size=1, max_size=4).map("/".join)
packet_ids = st.integers(min_value=1, max_value=0xFFFF)
# Raw bytes, well-formed text, and text with lone surrogates encoded the lax way.
topic_bytes = st.one_of(
    st.binary(max_size=40),
    st.text(max_size=12).map(lambda text: text.encode("utf-8", "surrogatepass")),
)


def reference_remaining_length(length: int) -> bytes:
    out = b""
    while True:
        length, digit = divmod(length, 128)
        if length:
            out += bytes([digit + 128])
        else:
            return out + bytes([digit])


def reference_publish(topic: str, payload: bytes, qos: int, packet_id: int) -> bytes:
    name = topic.encode("utf-8")
    variable = struct.pack("!H", len(name)) + name
    if qos:
        variable += struct.pack("!H", packet_id)
    body = variable + payload
    return bytes([0x30 | qos << 1]) + reference_remaining_length(len(body)) + body


@FAST
@given(st.integers(min_value=0, max_value=mp.MAX_REMAINING_LENGTH))
def test_remaining_length_matches_reference_and_round_trips(length: int) -> None:
    encoded = mp.encode_remaining_length(length)
    assert encoded == reference_remaining_length(length)
    stream = iter([bytes([0x30])] + [bytes([b]) for b in encoded])
    ptype, flags, decoded = mp.read_fixed_header(lambda n: next(stream), mp.MAX_REMAINING_LENGTH)
    assert (ptype, flags, decoded) == (mp.PUBLISH, 0, length)


@FAST
@given(topics, st.binary(max_size=300), st.sampled_from([0, 1]), packet_ids)
def test_publish_matches_reference_and_round_trips(
    topic: str, payload: bytes, qos: int, packet_id: int
) -> None:
    packet_id = packet_id if qos else 0
    packet = mp.encode_publish(topic, payload, qos=qos, packet_id=packet_id)
    assert packet == reference_publish(topic, payload, qos, packet_id)
    ptype, flags, body, rest = mp.split_packet(packet + b"\xd0\x00", LIMIT)
    assert (ptype, rest) == (mp.PUBLISH, b"\xd0\x00")
    assert mp.decode_publish(flags, body) == (topic, payload, qos, packet_id)


@FAST
@given(topics, packet_ids)
def test_subscribe_matches_reference(topic: str, packet_id: int) -> None:
    name = topic.encode("utf-8")
    body = struct.pack("!HH", packet_id, len(name)) + name + b"\x01"
    expected = b"\x82" + reference_remaining_length(len(body)) + body
    assert mp.encode_subscribe(packet_id, topic, 1) == expected


@FAST
@given(topic_bytes)
def test_topic_check_agrees_with_cpython_utf8(raw: bytes) -> None:
    body = struct.pack("!H", len(raw)) + raw
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    acceptable = text is not None and text != "" and not set(text) & {"\x00", "+", "#"}
    try:
        topic, _, _, _ = mp.decode_publish(0, body)
    except TransportError:
        assert not acceptable
    else:
        assert acceptable
        assert topic == text


@FAST
@given(st.binary(max_size=64), st.integers(min_value=0, max_value=LIMIT))
def test_arbitrary_bytes_only_raise_transport_error(data: bytes, limit: int) -> None:
    try:
        ptype, flags, body, rest = mp.split_packet(data, limit)
    except TransportError as exc:
        assert exc.reason
        return
    assert len(body) <= limit
    decoders = {
        mp.CONNACK: mp.decode_connack,
        mp.PUBACK: mp.decode_puback,
        mp.SUBACK: mp.decode_suback,
        mp.PINGRESP: mp.decode_pingresp,
    }
    try:
        if ptype == mp.PUBLISH:
            mp.decode_publish(flags, body)
        elif ptype in decoders:
            decoders[ptype](body)
    except TransportError as exc:
        assert exc.reason
    assert data.endswith(body + rest)


@FAST
@given(
    st.sampled_from([0x20, 0x30, 0x32, 0x40, 0x90, 0xD0]),
    st.integers(min_value=1, max_value=mp.MAX_REMAINING_LENGTH),
    st.integers(min_value=0, max_value=LIMIT),
)
def test_oversized_length_is_refused_before_any_body_read(
    first: int, length: int, limit: int
) -> None:
    header = bytes([first]) + mp.encode_remaining_length(length)
    position = 0

    def read(n: int) -> bytes:
        nonlocal position
        if position >= len(header):
            raise AssertionError("body read before the size check")
        chunk = header[position : position + n]
        position += n
        return chunk

    if length > limit:
        try:
            mp.read_fixed_header(read, limit)
        except TransportError as exc:
            assert "-byte limit" in exc.reason
        else:
            raise AssertionError("oversized packet accepted")
    else:
        assert mp.read_fixed_header(read, limit)[2] == length


@FAST
@given(st.binary(min_size=1, max_size=8))
def test_hostile_decoder_bodies_only_raise_transport_error(body: bytes) -> None:
    for decode in (mp.decode_connack, mp.decode_puback, mp.decode_suback, mp.decode_pingresp):
        try:
            decode(body)
        except TransportError as exc:
            assert exc.reason
    for flags in range(16):
        try:
            mp.decode_publish(flags, body)
        except TransportError as exc:
            assert exc.reason
