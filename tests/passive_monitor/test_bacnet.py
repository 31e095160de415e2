"""BACnet/IP: our BVLC/NPDU/APDU fields against tshark's, and service decoding.

Not comparable as they stand, and how they are compared instead:

- ``bvlc.length``: tshark 4.0 stores the BVLC *header* length (4, or 10 for
  Forwarded-NPDU) in this field and prints the wire value only in its text.
  Ours is the wire value, compared with tshark's ``udp.length`` - 8. In
  bacnet_example.pcap 240 datagrams carry a BVLC length of 17 whatever their
  size; both tshark ("17 of N bytes") and we flag them.
- ``bacapp.objectType``/``instance_number``/``property_identifier``: tshark
  lists every object identifier and property found anywhere in the service
  data, property values included; we decode the addressing part only (object
  and property of ReadProperty, WriteProperty, ReadPropertyMultiple, I-Am), so
  ours must be the leading part of tshark's list.
- I-Am max APDU and segmentation, and the property array index, have no tshark
  field; they are checked against the bytes in unit tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from passive_monitor.dissectors.bacnet import BacnetDissector
from passive_monitor.dissectors.base import Message
from tests.passive_monitor.shared_captures import capture, capture_names
from tests.passive_monitor.tshark_reference import (
    mismatches,
    normalise_ours,
    normalise_reference,
    ours,
    tshark_fields,
)

FIELDS = (
    "bvlc.type",
    "bvlc.function",
    "bvlc.result",
    "bvlc.reg_ttl",
    "bvlc.fwd_ip",
    "bvlc.fwd_port",
    "bacnet.version",
    "bacnet.control",
    "bacnet.dnet",
    "bacnet.dlen",
    "bacnet.dadr_mstp",
    "bacnet.dadr_eth",
    "bacnet.snet",
    "bacnet.slen",
    "bacnet.sadr_mstp",
    "bacnet.sadr_eth",
    "bacnet.hopc",
    "bacnet.mesgtyp",
    "bacapp.type",
    "bacapp.pduflags",
    "bacapp.segmented_request",
    "bacapp.more_segments",
    "bacapp.SA",
    "bacapp.response_segments",
    "bacapp.max_adpu_size",
    "bacapp.invoke_id",
    "bacapp.sequence_number",
    "bacapp.window_size",
    "bacapp.NAK",
    "bacapp.SRV",
    "bacapp.confirmed_service",
    "bacapp.unconfirmed_service",
    "bacapp.who_is.low_limit",
    "bacapp.who_is.high_limit",
    "bacapp.error_class",
    "bacapp.error_code",
    "bacapp.reject_reason",
    "bacapp.abort_reason",
    "bacapp.vendor_identifier",
)
LEADING = ("bacapp.objectType", "bacapp.instance_number", "bacapp.property_identifier")

# Captured datagrams (udp.payload).
READ_PROPERTY = bytes.fromhex("810a001101040005010c0c023fffff194b")
READ_PROPERTY_ACK = bytes.fromhex("810a0017010030010c0c023fffff194b3ec4020001f43f")
I_AM = bytes.fromhex("810a001401001000c4020002d12204009103210f")
ROUTED_REQUEST = bytes.fromhex("810a001a010c000d013d02033606c4028000000e31002201b80f")
ERROR = bytes.fromhex("810a00120120000d013dff5034149105911a")
REJECT = bytes.fromhex("810a000e0120000d013dff603a09")
ABORT = bytes.fromhex("810b00090100710100")
SEGMENT_ACK = bytes.fromhex("810a000a0100405e0003")
RESULT = bytes.fromhex("810000060020")
# Built from ASHRAE 135: Who-Is for devices 1..100, and the same broadcast forwarded by a BBMD.
WHO_IS_RANGE = bytes.fromhex("810b00100120ffff00ff100809011964")
FORWARDED = bytes.fromhex("8104000e0a0101a5bac001001008")


def _capture(name: str) -> Path:
    return capture("bacnet", name)


def _one(data: bytes) -> Message:
    (message,) = BacnetDissector().parse(data, to_server=True, frame=1, ts=0.0)
    return message


@pytest.mark.parametrize("name", capture_names("bacnet"))
def test_fields_match_tshark_frame_by_frame(name: str) -> None:
    assert mismatches(_capture(name), "bacnet", display_filter="bvlc", fields=FIELDS) == []


@pytest.mark.parametrize("name", capture_names("bacnet"))
def test_bvlc_length_matches_udp_length(name: str) -> None:
    reference = tshark_fields(_capture(name), display_filter="bvlc", fields=["udp.length"])
    mine = ours(_capture(name), "bacnet")
    for frame, values in reference.items():
        (udp_length,) = values["udp.length"]
        (message,) = mine[frame]
        wire = message.fields["bvlc.length"]
        consistent = wire == int(udp_length) - 8
        assert consistent != any("BVLC length" in v for v in message.violations), frame


@pytest.mark.parametrize("name", capture_names("bacnet"))
def test_addressed_objects_lead_tshark_lists(name: str) -> None:
    reference = tshark_fields(_capture(name), display_filter="bacapp", fields=LEADING)
    mine = ours(_capture(name), "bacnet")
    decoded = 0
    for frame, values in reference.items():
        for field in LEADING:
            own = [
                item
                for message in mine[frame]
                if field in message.fields
                for item in normalise_ours(message.fields[field])
            ]
            theirs = [normalise_reference(v) for v in values[field]]
            assert theirs[: len(own)] == own, (frame, field, theirs, own)
            decoded += bool(own)
    assert decoded


def test_read_property_request_and_ack() -> None:
    request = _one(READ_PROPERTY)
    assert request.is_request is True
    assert request.fields["bacapp.confirmed_service"] == 12
    assert request.fields["bacapp.objectType"] == (8,)
    assert request.fields["bacapp.instance_number"] == (4194303,)
    assert request.fields["bacapp.property_identifier"] == (75,)
    ack = _one(READ_PROPERTY_ACK)
    assert ack.is_request is False
    assert ack.fields["bacapp.type"] == 3
    assert ack.fields["bacapp.property_identifier"] == (75,)


def test_i_am_announces_the_device() -> None:
    fields = _one(I_AM).fields
    assert fields["bacapp.objectType"] == (8,)
    assert fields["bacapp.instance_number"] == (721,)
    assert fields["bacapp.i_am.max_apdu_length"] == 1024
    assert fields["bacapp.i_am.segmentation_supported"] == 3
    assert fields["bacapp.vendor_identifier"] == 15


def test_who_is_range() -> None:
    fields = _one(WHO_IS_RANGE).fields
    assert fields["bacnet.dnet"] == 0xFFFF
    assert fields["bacnet.hopc"] == 255
    assert (fields["bacapp.who_is.low_limit"], fields["bacapp.who_is.high_limit"]) == (1, 100)


def test_routing_fields_in_spec_order() -> None:
    fields = _one(ROUTED_REQUEST).fields
    assert fields["bacnet.snet"] == 13
    assert fields["bacnet.slen"] == 1
    assert fields["bacnet.sadr_mstp"] == 0x3D
    assert "bacnet.hopc" not in fields
    assert fields["bacapp.confirmed_service"] == 6


def test_forwarded_npdu_keeps_the_original_source() -> None:
    message = _one(FORWARDED)
    assert message.fields["bvlc.fwd_ip"] == "10.1.1.165"
    assert message.fields["bvlc.fwd_port"] == 47808
    assert message.fields["bacapp.unconfirmed_service"] == 8
    assert message.violations == ()


def test_error_reject_abort_reasons() -> None:
    error = _one(ERROR).fields
    assert (error["bacapp.error_class"], error["bacapp.error_code"]) == (5, 26)
    assert _one(REJECT).fields["bacapp.reject_reason"] == 9
    abort = _one(ABORT).fields
    assert abort["bacapp.abort_reason"] == 0
    assert abort["bacapp.SRV"] is True


def test_segment_ack_and_result() -> None:
    ack = _one(SEGMENT_ACK).fields
    assert (ack["bacapp.sequence_number"], ack["bacapp.window_size"]) == (0, 3)
    assert _one(RESULT).fields["bvlc.result"] == 0x20


def test_not_bacnet_ip_and_truncation_are_violations() -> None:
    assert _one(b"\x82\x0a\x00\x04").violations
    cut = _one(READ_PROPERTY[:-3])
    assert cut.violations
    assert cut.fields["bacapp.confirmed_service"] == 12
