"""IEC 60870-5-104: our APCI/ASDU fields against tshark's, and the stream framing.

Every capture under shared/pcaps/iec104 goes through the real sensor and is
compared frame by frame with tshark. tshark marks some frames of
TestDissectIec104.pcap malformed (APDUs shorter than 4 bytes, ASDUs cut after
their first octets); those frames are still compared: we report the same
partial fields tshark does, plus a violation.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from passive_monitor.dissectors.base import Message
from passive_monitor.dissectors.iec104 import Iec104Dissector
from tests.passive_monitor.shared_captures import capture, capture_names
from tests.passive_monitor.tshark_reference import mismatches, ours, tshark_malformed

FIELDS = (
    "iec60870_104.apdulen",
    "iec60870_104.type",
    "iec60870_104.utype",
    "iec60870_104.tx",
    "iec60870_104.rx",
    "iec60870_asdu.typeid",
    "iec60870_asdu.sq",
    "iec60870_asdu.numix",
    "iec60870_asdu.causetx",
    "iec60870_asdu.nega",
    "iec60870_asdu.test",
    "iec60870_asdu.oa",
    "iec60870_asdu.addr",
    "iec60870_asdu.ioa",
)

# Captured frames (tcp.payload).
STARTDT_ACT = bytes.fromhex("680407000000")
TESTFR_ACT = bytes.fromhex("680443000000")
FLOATS_TWO_OBJECTS = bytes.fromhex("681a9a0028000d02010003001405000000f041001505000000314400")
FOUR_APDUS = bytes.fromhex(
    "680401000200680e02000200640107000d9100000014681604000200018914000d911a2700d08080"
    "80c080808080681006000200038314000d912a4e00808080"
)
NEGATIVE_CONFIRMATION = bytes.fromhex("680401000400680e0a0004002e0147010d91983a0082")


def _capture(name: str) -> Path:
    return capture("iec104", name)


def _feed(data: bytes, *, chunk: int | None = None) -> list[Message]:
    dissector = Iec104Dissector()
    size = chunk or len(data)
    found: list[Message] = []
    for start in range(0, len(data), size):
        found += dissector.feed(data[start : start + size], to_server=True, frame=1, ts=0.0)
    return found


@pytest.mark.parametrize("name", capture_names("iec104"))
def test_fields_match_tshark_frame_by_frame(name: str) -> None:
    assert mismatches(_capture(name), "iec104", display_filter="iec60870_104", fields=FIELDS) == []


def test_frames_tshark_calls_malformed_carry_violations() -> None:
    capture = _capture("TestDissectIec104.pcap")
    malformed = tshark_malformed(capture, display_filter="iec60870_104", fields=FIELDS)
    assert malformed
    mine = ours(capture, "iec104")
    for frame in malformed:
        assert any(message.violations for message in mine[frame]), frame


def test_u_frame_function() -> None:
    (message,) = _feed(STARTDT_ACT)
    assert message.fields == {
        "iec60870_104.apdulen": 4,
        "iec60870_104.type": 3,
        "iec60870_104.utype": 0x01,
    }
    assert message.violations == ()
    (test_frame,) = _feed(TESTFR_ACT)
    assert test_frame.fields["iec60870_104.utype"] == 0x10


def test_i_frame_split_byte_by_byte() -> None:
    (message,) = _feed(FLOATS_TWO_OBJECTS, chunk=1)
    assert message.fields["iec60870_104.tx"] == 77
    assert message.fields["iec60870_104.rx"] == 20
    assert message.fields["iec60870_asdu.typeid"] == 13
    assert message.fields["iec60870_asdu.causetx"] == 1
    assert message.fields["iec60870_asdu.addr"] == 3
    assert message.fields["iec60870_asdu.ioa"] == (1300, 1301)
    assert message.violations == ()


def test_several_apdus_in_one_segment() -> None:
    messages = _feed(FOUR_APDUS)
    assert [m.fields["iec60870_104.type"] for m in messages] == [1, 0, 0, 0]
    assert [m.fields.get("iec60870_asdu.typeid") for m in messages] == [None, 100, 1, 3]
    assert messages[2].fields["iec60870_asdu.sq"] is True
    assert messages[2].fields["iec60870_asdu.ioa"] == tuple(range(10010, 10019))
    assert all(m.violations == () for m in messages)


def test_negative_confirmation_bit() -> None:
    supervisory, message = _feed(NEGATIVE_CONFIRMATION)
    assert supervisory.fields["iec60870_104.rx"] == 2
    assert message.fields["iec60870_asdu.nega"] is True
    assert message.fields["iec60870_asdu.causetx"] == 7


def test_garbage_before_start_byte_is_a_violation_then_resyncs() -> None:
    messages = _feed(b"\x01\x02\x03" + STARTDT_ACT)
    assert messages[0].fields == {}
    assert "3 bytes" in messages[0].violations[0]
    assert messages[1].fields["iec60870_104.utype"] == 0x01


def test_after_a_gap_skipped_bytes_are_expected() -> None:
    dissector = Iec104Dissector()
    dissector.gap(to_server=False)
    messages = dissector.feed(b"\x00\x00" + TESTFR_ACT, to_server=False, frame=2, ts=1.0)
    assert len(messages) == 1
    assert messages[0].violations == ()
    assert messages[0].is_request is False


def test_short_apdu_and_unknown_type() -> None:
    (short,) = _feed(bytes.fromhex("68020000"))
    assert short.fields == {"iec60870_104.apdulen": 2}
    assert short.violations
    unknown = bytes.fromhex("680e00000000") + bytes([99, 1, 6, 0, 1, 0]) + b"\x01\x00\x00\x00"
    (message,) = _feed(unknown)
    assert message.fields["iec60870_asdu.typeid"] == 99
    assert any("unknown ASDU type" in v for v in message.violations)


def test_object_count_disagreeing_with_length_is_a_violation() -> None:
    apdu = bytearray(FLOATS_TWO_OBJECTS)
    apdu[7] = 3  # three objects announced, two present
    (message,) = _feed(bytes(apdu))
    assert any("need" in v for v in message.violations)
