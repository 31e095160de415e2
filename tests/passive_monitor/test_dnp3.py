"""DNP3 dissection, checked against tshark on every shared capture.

Two defects of tshark 4.0 are handled explicitly rather than copied:

* Secure-authentication functions (32 Authentication Request, 33 its
  no-ack form, 131 Authentication Response): tshark stops after the function
  code, showing neither the response's IIN nor the group 120 objects. For
  those frames the IIN and object fields are left out of the comparison and
  we check that our side did decode them.
* Transport sequence wrap-around (63 -> 0): tshark loses or garbles the
  application fragment whose segment carries sequence 0 after 63 in the same
  direction (in dnp3_example.pcap it shows function 0 in a frame whose
  application header is 0xc8 0x81). For those frames the application fields
  are left out and we check that ours decoded the fragment.

Both sets of frames are derived from tshark's own output, not listed by hand.
"""

from __future__ import annotations

import struct

import pytest

from passive_monitor.dissectors.base import Message
from passive_monitor.dissectors.dnp3 import Dnp3Tcp, Dnp3Udp, dnp3_crc, frame_length
from tests.passive_monitor.shared_captures import capture, capture_names
from tests.passive_monitor.tshark_reference import (
    Reference,
    mismatches,
    ours,
    tshark_fields,
    tshark_malformed,
)

LINK_FIELDS = [
    "dnp3.src",
    "dnp3.dst",
    "dnp3.len",
    "dnp3.ctl",
    "dnp3.ctl.dir",
    "dnp3.ctl.prm",
    "dnp3.ctl.fcb",
    "dnp3.ctl.fcv",
    "dnp3.ctl.dfc",
    "dnp3.ctl.prifunc",
    "dnp3.ctl.secfunc",
    "dnp3.hdr.CRC",
    "dnp3.tr.ctl",
    "dnp3.tr.fin",
    "dnp3.tr.fir",
    "dnp3.tr.seq",
]
IIN_FIELDS = [
    "dnp3.al.iin",
    "dnp3.al.iin.rst",
    "dnp3.al.iin.dt",
    "dnp3.al.iin.dol",
    "dnp3.al.iin.tsr",
    "dnp3.al.iin.cls3d",
    "dnp3.al.iin.cls2d",
    "dnp3.al.iin.cls1d",
    "dnp3.al.iin.bmsg",
    "dnp3.al.iin.cc",
    "dnp3.al.iin.oae",
    "dnp3.al.iin.ebo",
    "dnp3.al.iin.pioor",
    "dnp3.al.iin.obju",
    "dnp3.al.iin.fcni",
]
OBJECT_FIELDS = [
    "dnp3.al.obj",
    "dnp3.al.objq.prefix",
    "dnp3.al.objq.range",
    "dnp3.al.range.start",
    "dnp3.al.range.stop",
    "dnp3.al.range.abs",
    "dnp3.al.range.quantity",
]
APPLICATION_HEADER = [
    "dnp3.al.ctl",
    "dnp3.al.fir",
    "dnp3.al.fin",
    "dnp3.al.con",
    "dnp3.al.uns",
    "dnp3.al.seq",
    "dnp3.al.func",
]
DNP3_FIELDS = LINK_FIELDS + APPLICATION_HEADER + IIN_FIELDS + OBJECT_FIELDS
SECURE_AUTHENTICATION = {"32", "33", "131"}


def secure_authentication_frames(reference: Reference) -> set[int]:
    return {
        frame
        for frame, values in reference.items()
        if SECURE_AUTHENTICATION & set(values["dnp3.al.func"])
    }


def sequence_wrap_frames(reference: Reference) -> set[int]:
    """Frames with a transport segment numbered 0 right after 63, per direction."""
    last: dict[tuple[str, str], str] = {}
    found: set[int] = set()
    for frame in sorted(reference):
        values = reference[frame]
        pairs = zip(values["dnp3.src"], values["dnp3.dst"], values["dnp3.tr.seq"], strict=False)
        for src, dst, seq in pairs:
            if seq == "0" and last.get((src, dst)) == "63":
                found.add(frame)
            last[src, dst] = seq
    return found


def application_of(messages: list[Message]) -> list[dict[str, object]]:
    return [dict(m.fields) for m in messages if "dnp3.al.func" in m.fields]


@pytest.mark.parametrize("name", capture_names("dnp3"))
def test_fields_match_tshark_frame_by_frame(name: str) -> None:
    pcap = capture("dnp3", name)
    reference = tshark_fields(pcap, display_filter="dnp3", fields=DNP3_FIELDS)
    mine = ours(pcap, "dnp3")
    exclude: dict[int, list[str]] = {}
    for frame in secure_authentication_frames(reference):
        exclude[frame] = IIN_FIELDS + OBJECT_FIELDS
        assert any("dnp3.al.obj" in m.fields for m in mine[frame]), frame
    for frame in sequence_wrap_frames(reference):
        exclude[frame] = APPLICATION_HEADER + IIN_FIELDS + OBJECT_FIELDS
        assert application_of(mine[frame]), frame
    problems = mismatches(pcap, "dnp3", display_filter="dnp3", fields=DNP3_FIELDS, exclude=exclude)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", capture_names("dnp3"))
def test_frames_tshark_calls_malformed_carry_violations(name: str) -> None:
    pcap = capture("dnp3", name)
    dissected = ours(pcap, "dnp3")
    for frame in tshark_malformed(pcap, display_filter="dnp3", fields=DNP3_FIELDS):
        assert any(m.violations for m in dissected.get(frame, [])), frame


def test_wrapped_fragment_is_decoded_from_its_bytes() -> None:
    pcap = capture("dnp3", "dnp3_example.pcap")
    (message,) = ours(pcap, "dnp3")[311]
    assert message.fields["dnp3.tr.seq"] == 0
    assert message.fields["dnp3.al.ctl"] == 0xC8
    assert message.fields["dnp3.al.func"] == 129


def link_frame(control: int, dst: int, src: int, user: bytes) -> bytes:
    header = b"\x05\x64" + struct.pack("<BBHH", 5 + len(user), control, dst, src)
    out = header + struct.pack("<H", dnp3_crc(header))
    for at in range(0, len(user), 16):
        block = user[at : at + 16]
        out += block + struct.pack("<H", dnp3_crc(block))
    return out


def test_crc_matches_the_standard_check_value() -> None:
    assert dnp3_crc(b"123456789") == 0xEA82


def test_frame_length_counts_block_crcs() -> None:
    assert frame_length(5) == 10
    assert frame_length(5 + 16) == 10 + 16 + 2
    assert frame_length(5 + 17) == 10 + 17 + 4


def test_cold_restart_request_and_response_with_iin() -> None:
    dissector = Dnp3Tcp()
    request = link_frame(0xC4, 10, 1, bytes([0xC0, 0xC1, 13]))
    (req,) = dissector.feed(request, to_server=True, frame=1, ts=0.0)
    assert req.fields["dnp3.al.func"] == 13
    assert req.is_request is True
    response = link_frame(0x44, 1, 10, bytes([0xC0, 0xC1, 0x81, 0x80, 0x00, 52, 2, 7, 1, 5, 0]))
    (resp,) = dissector.feed(response, to_server=False, frame=2, ts=0.0)
    assert resp.fields["dnp3.al.iin"] == 0x8000
    assert resp.fields["dnp3.al.iin.rst"] is True
    assert resp.fields["dnp3.al.obj"] == (0x3402,)
    assert resp.fields["dnp3.al.range.quantity"] == (1,)
    assert resp.violations == ()


def test_fragment_spanning_link_frames_completes_on_the_final_segment() -> None:
    objects = bytes([1, 2, 0x00, 0, 39]) + bytes(40)
    fragment = bytes([0xC0, 0x81, 0, 0]) + objects
    first = link_frame(0x44, 1, 10, bytes([0x40 | 5]) + fragment[:20])
    last = link_frame(0x44, 1, 10, bytes([0x80 | 6]) + fragment[20:])
    messages = Dnp3Tcp().feed(first + last, to_server=False, frame=1, ts=0.0)
    assert "dnp3.al.func" not in messages[0].fields
    assert messages[1].fields["dnp3.al.obj"] == (0x0102,)
    assert messages[1].fields["dnp3.al.range.stop"] == (39,)
    assert messages[1].violations == ()


def test_bad_data_crc_is_a_violation_without_transport_fields() -> None:
    frame = bytearray(link_frame(0xC4, 10, 1, bytes([0xC0, 0xC1, 1, 60, 2, 6])))
    frame[11] ^= 0xFF
    (message,) = Dnp3Tcp().feed(bytes(frame), to_server=True, frame=1, ts=0.0)
    assert "data block CRC mismatch" in message.violations
    assert "dnp3.tr.ctl" not in message.fields


def test_bad_header_crc_is_not_taken_for_dnp3() -> None:
    frame = bytearray(link_frame(0xC4, 10, 1, bytes([0xC0, 0xC1, 1])))
    frame[8] ^= 0x01
    (message,) = Dnp3Tcp().feed(bytes(frame), to_server=True, frame=1, ts=0.0)
    assert message.fields == {} and message.violations


def test_reserved_qualifier_is_a_violation() -> None:
    frame = link_frame(0xC4, 10, 1, bytes([0xC0, 0xC1, 1, 60, 2, 0x0A]))
    (message,) = Dnp3Tcp().feed(frame, to_server=True, frame=1, ts=0.0)
    assert message.fields["dnp3.al.objq.range"] == (10,)
    assert any("reserved" in v for v in message.violations)


def test_datagram_with_two_link_frames() -> None:
    one = link_frame(0xC4, 10, 1, bytes([0xC0, 0xC1, 20, 60, 2, 6]))
    two = link_frame(0xC9, 10, 1, b"")
    messages = Dnp3Udp().parse(one + two, to_server=True, frame=1, ts=0.0)
    assert [m.fields["dnp3.ctl"] for m in messages] == [0xC4, 0xC9]
    assert messages[0].fields["dnp3.al.func"] == 20


def test_transport_sequence_break_discards_the_fragment() -> None:
    dissector = Dnp3Tcp()
    first = link_frame(0x44, 1, 10, bytes([0x40 | 5, 0xC0, 0x81, 0, 0]))
    skipped = link_frame(0x44, 1, 10, bytes([0x80 | 7, 1, 2, 0, 0, 0]))
    messages = dissector.feed(first + skipped, to_server=False, frame=1, ts=0.0)
    assert "dnp3.al.func" not in messages[1].fields
    assert any("sequence 7" in v for v in messages[1].violations)


def test_partial_fragments_per_direction_are_bounded() -> None:
    dissector = Dnp3Tcp()
    frames = b"".join(link_frame(0x44, 1, src, bytes([0x40, 0xC0])) for src in range(40))
    messages = dissector.feed(frames, to_server=False, frame=1, ts=0.0)
    assert sum(bool(m.violations) for m in messages) == 40 - 16
    last = link_frame(0x44, 1, 39, bytes([0x80 | 1, 0x81, 0, 0]))
    (done,) = dissector.feed(last, to_server=False, frame=2, ts=0.0)
    assert done.fields["dnp3.al.func"] == 0x81
