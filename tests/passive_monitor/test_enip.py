"""EtherNet/IP and CIP: our fields against tshark's, and the device identity we extract.

Not comparable as they stand, and how they are compared instead:

- ``enip.context`` and ``enip.lir.name`` are byte strings and text that the
  shared normaliser would read as integers when they are all digits (a zero
  sender context prints as ``0000000000000000``); they are compared verbatim.
- ``cip.class``/``cip.instance``/``cip.attribute``/``cip.path_segment`` in
  *responses*: a CIP response carries no path; tshark copies the request's
  path into the response through its request tracking and decodes attribute
  values by class. We report paths where they are on the wire, so these fields
  are compared on request frames only.
- ``enip.lir.revision``: tshark's value is major << 8 | minor; we give it in
  that form and also split (``revision_major``/``revision_minor``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from passive_monitor.dissectors.base import Message
from passive_monitor.dissectors.enip import CipIoDissector, EnipDissector, EnipUdpDissector
from tests.passive_monitor.shared_captures import capture, capture_names
from tests.passive_monitor.tshark_reference import (
    mismatches,
    normalise_ours,
    normalise_reference,
    ours,
    tshark_fields,
)

FIELDS = (
    "enip.command",
    "enip.length",
    "enip.session",
    "enip.status",
    "enip.listid_delay",
    "enip.options",
    "enip.rs.version",
    "enip.rs.flags",
    "enip.srrd.iface",
    "enip.sud.iface",
    "enip.timeout",
    "enip.encapver",
    "enip.lir.vendor",
    "enip.lir.devtype",
    "enip.lir.prodcode",
    "enip.lir.revision",
    "enip.lir.status",
    "enip.lir.serial",
    "enip.lir.state",
    "enip.cpf.itemcount",
    "enip.cpf.typeid",
    "enip.cpf.length",
    "enip.cpf.cai.connid",
    "enip.cpf.sai.connid",
    "enip.cpf.sai.seq",
    "cip.service",
    "cip.sc",
    "cip.genstat",
)
VERBATIM = ("enip.context", "enip.lir.name")
REQUEST_PATH = ("cip.class", "cip.instance", "cip.attribute", "cip.member", "cip.path_segment")
IO_FIELDS = (
    "enip.cpf.itemcount",
    "enip.cpf.typeid",
    "enip.cpf.length",
    "enip.cpf.sai.connid",
    "enip.cpf.sai.seq",
)
EXPLICIT = "enip && !(udp.port == 2222)"

# Captured frames (tcp.payload / udp.payload).
LIST_IDENTITY_REPLY = bytes.fromhex(
    "63003300000000000000000000000000c1debed10000000001000c002d0001000002af120a0101a4"
    "000000000000000001000c003a00040330008e4d52000b313735362d454e42542f4103"
)
STOP_PLC = bytes.fromhex(
    "70001c0001002a00000000000000000000000000000000000000000001000200a1000400224095ff"
    "b100080006010702208e2401"
)
IO_FRAME = bytes.fromhex("02000280080003064b00db943f00b1000600a587e80f0300")
# RegisterSession request built from the CIP Vol. 2 layout: protocol version 1, no options.
REGISTER_SESSION = bytes.fromhex("65000400000000000000000001020304050607080000000001000000")


def _capture(name: str) -> Path:
    return capture("enip", name)


def _compare(
    name: str, display_filter: str, fields: tuple[str, ...], *, verbatim: bool
) -> list[str]:
    """Fields of the frames *display_filter* selects, for comparisons the harness cannot make."""
    reference = tshark_fields(_capture(name), display_filter=display_filter, fields=fields)
    mine = ours(_capture(name), "enip")
    problems: list[str] = []
    for frame, values in reference.items():
        for field in fields:
            theirs = values[field] if verbatim else [normalise_reference(v) for v in values[field]]
            own = [
                item
                for message in mine.get(frame, [])
                if field in message.fields
                for item in normalise_ours(message.fields[field])
            ]
            if theirs != own:
                problems.append(f"frame {frame}: {field}: tshark {theirs} ours {own}")
    return problems


def _stream(data: bytes, *, to_server: bool = True) -> list[Message]:
    return EnipDissector().feed(data, to_server=to_server, frame=1, ts=0.0)


@pytest.mark.parametrize("name", capture_names("enip"))
def test_fields_match_tshark_frame_by_frame(name: str) -> None:
    assert mismatches(_capture(name), "enip", display_filter=EXPLICIT, fields=FIELDS) == []
    assert _compare(name, EXPLICIT, VERBATIM, verbatim=True) == []


@pytest.mark.parametrize("name", capture_names("enip"))
def test_request_paths_match_tshark(name: str) -> None:
    requests = "cip && tcp && !(cip.service >= 0x80)"
    assert _compare(name, requests, REQUEST_PATH, verbatim=False) == []


def test_cyclic_io_matches_tshark() -> None:
    capture = _capture("enip_cip_example.pcap")
    found = mismatches(capture, "cipio", display_filter="udp.port == 2222", fields=IO_FIELDS)
    assert found == []


def test_list_identity_names_the_device() -> None:
    (message,) = _stream(LIST_IDENTITY_REPLY, to_server=False)
    fields = message.fields
    assert fields["enip.lir.vendor"] == 1
    assert fields["enip.lir.prodcode"] == 58
    assert (fields["enip.lir.revision_major"], fields["enip.lir.revision_minor"]) == (4, 3)
    assert fields["enip.lir.serial"] == 0x00524D8E
    assert fields["enip.lir.name"] == "1756-ENBT/A"
    assert fields["enip.lir.state"] == 3
    assert message.violations == ()


def test_list_identity_over_udp() -> None:
    (message,) = EnipUdpDissector().parse(LIST_IDENTITY_REPLY, to_server=False, frame=1, ts=0.0)
    assert message.fields["enip.lir.devtype"] == 12


def test_stop_request_in_connected_data() -> None:
    (message,) = _stream(STOP_PLC)
    assert message.fields["cip.service"] == 0x07
    assert message.fields["cip.class"] == 0x8E
    assert message.fields["cip.instance"] == 1
    assert message.fields["enip.cpf.cai.connid"] == 0xFF954022


def test_register_session_and_byte_by_byte_delivery() -> None:
    dissector = EnipDissector()
    found: list[Message] = []
    for byte in REGISTER_SESSION + STOP_PLC:
        found += dissector.feed(bytes([byte]), to_server=True, frame=1, ts=0.0)
    assert [m.fields["enip.command"] for m in found] == [0x65, 0x70]
    assert found[0].fields["enip.rs.version"] == 1
    assert found[0].fields["enip.context"] == bytes(range(1, 9))


def test_garbage_then_resync() -> None:
    messages = _stream(b"\x99" * 30 + STOP_PLC)
    assert messages[0].fields == {} and "30 bytes" in messages[0].violations[0]
    assert messages[1].fields["cip.service"] == 0x07


def test_cip_path_overrun_is_a_violation() -> None:
    broken = bytearray(STOP_PLC)
    broken[-5] = 9  # request path claims 18 bytes
    (message,) = _stream(bytes(broken))
    assert any("CIP message truncated" in v for v in message.violations)


def test_cyclic_io_items() -> None:
    (message,) = CipIoDissector().parse(IO_FRAME, to_server=False, frame=1, ts=0.0)
    assert message.fields["enip.cpf.typeid"] == (0x8002, 0x00B1)
    assert message.fields["enip.cpf.sai.connid"] == 0x004B0603
    assert message.fields["enip.cpf.sai.seq"] == 0x003F94DB
