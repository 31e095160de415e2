"""Modbus/TCP dissection, checked against tshark on every shared capture.

The per-frame comparison runs with TCP reordering off, which is tshark's own
default policy; on captures where tshark reports no lost or out-of-order
segments the sensor's default (holding early segments) must give the very
same result. ``fuzz-72.pcap`` has fuzzed sequence numbers, so only the first
comparison applies to it. Frames tshark calls malformed must carry a
violation on our side too.
"""

from __future__ import annotations

import struct

import pytest

from passive_monitor.dissectors.base import Message
from passive_monitor.dissectors.modbus import ModbusTcp
from tests.passive_monitor.shared_captures import capture, capture_names
from tests.passive_monitor.tshark_reference import (
    mismatches,
    ours,
    tshark_fields,
    tshark_malformed,
)

MODBUS_FIELDS = [
    "mbtcp.trans_id",
    "mbtcp.prot_id",
    "mbtcp.len",
    "mbtcp.unit_id",
    "modbus.func_code",
    "modbus.exception_code",
    "modbus.reference_num",
    "modbus.word_cnt",
    "modbus.bit_cnt",
    "modbus.byte_cnt",
    "modbus.byte_cnt_16",
    "modbus.diagnostic_code",
    "modbus.and_mask",
    "modbus.or_mask",
    "modbus.read_reference_num",
    "modbus.read_word_cnt",
    "modbus.write_reference_num",
    "modbus.write_word_cnt",
    "modbus.ev_status",
    "modbus.ev_count",
    "modbus.ev_msg_count",
    "modbus.mei",
    "modbus.read_device_id",
    "modbus.conformity_level",
    "modbus.more_follows",
    "modbus.next_object_id",
    "modbus.num_objects",
    "modbus.object_id",
    "modbus.objects_len",
    "modbus.object_str_value",
]
SEQUENCE_ANOMALIES = "tcp.analysis.lost_segment || tcp.analysis.out_of_order"


@pytest.mark.parametrize("name", capture_names("modbus"))
def test_fields_match_tshark_frame_by_frame(name: str) -> None:
    pcap = capture("modbus", name)
    problems = mismatches(
        pcap, "modbus", display_filter="mbtcp", fields=MODBUS_FIELDS, reorder_bytes=0
    )
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", capture_names("modbus"))
def test_default_reordering_changes_nothing_on_well_ordered_captures(name: str) -> None:
    pcap = capture("modbus", name)
    if tshark_fields(pcap, display_filter=SEQUENCE_ANOMALIES, fields=["tcp.seq"]):
        assert name == "fuzz-72.pcap", f"{name}: unexpected TCP sequence anomalies"
        return
    problems = mismatches(pcap, "modbus", display_filter="mbtcp", fields=MODBUS_FIELDS)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", capture_names("modbus"))
def test_frames_tshark_calls_malformed_carry_violations(name: str) -> None:
    pcap = capture("modbus", name)
    dissected = ours(pcap, "modbus", reorder_bytes=0)
    for frame in tshark_malformed(pcap, display_filter="mbtcp", fields=MODBUS_FIELDS):
        assert any(m.violations for m in dissected.get(frame, [])), frame


def test_device_identification_objects_are_read_from_the_capture() -> None:
    pcap = capture("modbus", "modbus_example.pcap")
    responses = [
        m
        for messages in ours(pcap, "modbus").values()
        for m in messages
        if m.fields.get("modbus.func_code") == 43 and not m.is_request
    ]
    assert responses[0].fields["modbus.object_str_value"] == (
        "Zeek Modbus Test",
        "Protocol Parsing is fun!",
        "1.2.3.6",
    )
    assert responses[0].fields["modbus.object_id"] == (0, 1, 2)


def adu(trans: int, unit: int, pdu: bytes) -> bytes:
    return struct.pack("!HHHB", trans, 0, len(pdu) + 1, unit) + pdu


def feed_all(chunks: list[bytes], *, to_server: bool = True) -> list[Message]:
    dissector = ModbusTcp()
    found: list[Message] = []
    for number, chunk in enumerate(chunks, start=1):
        found += dissector.feed(chunk, to_server=to_server, frame=number, ts=0.0)
    return found


def test_exception_response_masks_the_function_code() -> None:
    (message,) = feed_all([adu(7, 1, bytes([0x83, 0x02]))], to_server=False)
    assert message.fields["modbus.func_code"] == 3
    assert message.fields["modbus.exception_code"] == 2
    assert message.is_request is False
    assert message.violations == ()


def test_write_multiple_registers_request() -> None:
    pdu = struct.pack("!BHHB", 16, 100, 2, 4) + b"\x00\x01\x00\x02"
    (message,) = feed_all([adu(1, 9, pdu)])
    assert message.fields["modbus.reference_num"] == 100
    assert message.fields["modbus.word_cnt"] == 2
    assert message.fields["modbus.byte_cnt"] == 4


def test_umas_envelope_on_function_90() -> None:
    stop = feed_all([adu(3, 0, bytes([90, 0x12, 0x41]))])
    assert stop[0].fields["umas.func_code"] == 0x41
    assert stop[0].fields["umas.session_key"] == 0x12
    reply = feed_all([adu(3, 0, bytes([90, 0x12, 0xFE]))], to_server=False)
    assert reply[0].fields["umas.status"] == 0xFE


def test_an_adu_split_over_segments_completes_in_the_last_one() -> None:
    whole = adu(5, 1, struct.pack("!BHH", 3, 0, 10))
    messages = feed_all([whole[:3], whole[3:9], whole[9:]])
    assert [m.frame for m in messages if m.fields] == [3]


def test_several_adus_in_one_segment() -> None:
    data = adu(1, 1, b"\x03\x00\x00\x00\x01") + adu(2, 1, b"\x04\x00\x00\x00\x01")
    messages = feed_all([data])
    assert [m.fields["mbtcp.trans_id"] for m in messages] == [1, 2]


def test_garbage_is_a_violation_and_the_next_segment_resynchronises() -> None:
    messages = feed_all([b"\xff" * 20, adu(4, 1, b"\x01\x00\x00\x00\x08")])
    assert messages[0].fields == {} and messages[0].violations
    assert messages[1].fields["modbus.bit_cnt"] == 8


def test_truncated_pdu_keeps_fields_read_and_flags_the_rest() -> None:
    (message,) = feed_all([adu(1, 1, b"\x10\x00\x05")])
    assert message.fields["modbus.func_code"] == 16
    assert "modbus.reference_num" in message.fields
    assert message.violations


def test_device_identification_with_overlong_object_is_a_violation() -> None:
    pdu = bytes([43, 14, 1, 1, 0, 0, 1, 0, 200]) + b"short"
    (message,) = feed_all([adu(1, 1, pdu)], to_server=False)
    assert message.fields["modbus.num_objects"] == 1
    assert message.violations


def test_gap_discards_a_partial_adu() -> None:
    dissector = ModbusTcp()
    whole = adu(5, 1, struct.pack("!BHH", 3, 0, 10))
    dissector.feed(whole[:9], to_server=True, frame=1, ts=0.0)
    dissector.gap(to_server=True)
    (message,) = dissector.feed(whole, to_server=True, frame=2, ts=0.0)
    assert message.fields["modbus.word_cnt"] == 10


def test_oversized_mbap_length_is_refused_instead_of_buffered() -> None:
    dissector = ModbusTcp()
    header = struct.pack("!HHHB", 1, 0, 6000, 1) + b"\x03"
    (message,) = dissector.feed(header, to_server=True, frame=1, ts=0.0)
    assert message.violations and not message.fields
    (good,) = dissector.feed(adu(2, 1, b"\x03\x00\x00\x00\x01"), to_server=True, frame=2, ts=0.0)
    assert good.fields["mbtcp.trans_id"] == 2
