"""Capture readers: agreement with tshark on real files, and hostile files.

A capture file is untrusted input; whatever its bytes, reading it yields
frames or stops with CaptureError, never another exception, never a huge
allocation.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from passive_monitor.capture import CaptureError, read_capture
from tests.passive_monitor.shared_captures import capture
from tests.passive_monitor.tshark_reference import tshark_fields

# One of each format and link type found in the shared captures.
REFERENCE_CAPTURES = [
    ("modbus", "modbus_example.pcap"),
    ("dnp3", "dnp3_example.pcap"),
    ("s7comm", "s7comm_plus.pcap"),
    ("s7comm", "step7_s300_stop.pcapng"),
    ("s7comm", "tia_s300_downloadOb1.pcapng"),
]


@pytest.mark.parametrize(("kind", "name"), REFERENCE_CAPTURES)
def test_frames_timestamps_and_lengths_match_tshark(kind: str, name: str) -> None:
    pcap = capture(kind, name)
    reference = tshark_fields(
        pcap, display_filter="frame", fields=["frame.time_epoch", "frame.cap_len"]
    )
    frames = list(read_capture(pcap))
    assert len(frames) == len(reference)
    for number, (ts, _linktype, data) in enumerate(frames, start=1):
        expected = reference[number]
        assert len(data) == int(expected["frame.cap_len"][0]), number
        assert ts == pytest.approx(float(expected["frame.time_epoch"][0]), abs=1e-6), number


def test_linux_cooked_capture_reports_its_link_type() -> None:
    frames = list(read_capture(capture("s7comm", "s7comm_plus.pcap")))
    assert {linktype for _ts, linktype, _data in frames} == {113}


def pcap_file(
    records: list[bytes], *, order: str = "<", nano: bool = False, linktype: int = 1
) -> bytes:
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, 65535, linktype)
    for number, record in enumerate(records):
        out += struct.pack(order + "IIII", 1000 + number, 500, len(record), len(record)) + record
    return out


def block(block_type: int, body: bytes, order: str = "<") -> bytes:
    body += b"\0" * (-len(body) % 4)
    total = len(body) + 12
    return struct.pack(order + "II", block_type, total) + body + struct.pack(order + "I", total)


def section(order: str = "<") -> bytes:
    return block(0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1), order)


def interface(linktype: int = 1, options: bytes = b"", order: str = "<") -> bytes:
    return block(1, struct.pack(order + "HHI", linktype, 0, 0) + options, order)


def enhanced(data: bytes, ticks: int, if_id: int = 0, order: str = "<") -> bytes:
    head = struct.pack(
        order + "IIIII", if_id, ticks >> 32, ticks & 0xFFFFFFFF, len(data), len(data)
    )
    return block(6, head + data, order)


def write(tmp_path: Path, content: bytes) -> Path:
    path = tmp_path / "capture"
    path.write_bytes(content)
    return path


def test_pcap_both_byte_orders_and_nanoseconds(tmp_path: Path) -> None:
    for order in "<>":
        for nano in (False, True):
            path = write(tmp_path, pcap_file([b"abc", b"de"], order=order, nano=nano))
            frames = list(read_capture(path))
            assert [data for _ts, _lt, data in frames] == [b"abc", b"de"]
            assert frames[0][0] == pytest.approx(1000 + (500e-9 if nano else 500e-6))


def test_pcapng_resolution_options_and_skipped_blocks(tmp_path: Path) -> None:
    nanoseconds = struct.pack("<HHB3x", 9, 1, 9) + b"\0" * 4
    binary = struct.pack("<HHB3x", 9, 1, 0x80 | 10) + b"\0" * 4
    content = (
        section()
        + interface(1, nanoseconds)
        + interface(101, binary)
        + block(4, b"\0" * 8)  # name resolution
        + enhanced(b"first", 1_500_000_000, 0)
        + block(5, b"\0" * 12)  # interface statistics
        + enhanced(b"second", 2048, 1)
        + block(0x00000BAD, b"custom")
        + block(3, struct.pack("<I", 6) + b"simple")
    )
    frames = list(read_capture(write(tmp_path, content)))
    assert [frame[1:] for frame in frames] == [(1, b"first"), (101, b"second"), (1, b"simple")]
    assert [frame[0] for frame in frames[:2]] == pytest.approx([1.5, 2.0])


def test_pcapng_big_endian_section(tmp_path: Path) -> None:
    content = section(">") + interface(1, order=">") + enhanced(b"xyz", 3_000_000, order=">")
    ((ts, linktype, data),) = read_capture(write(tmp_path, content))
    assert (linktype, data) == (1, b"xyz")
    assert ts == pytest.approx(3.0)


HOSTILE = {
    "empty": b"",
    "bad magic": b"\x00\x01\x02\x03" + b"\0" * 40,
    "truncated pcap header": pcap_file([])[:20],
    "pcap version 3": struct.pack("<IHHiIII", 0xA1B2C3D4, 3, 0, 0, 0, 65535, 1),
    "truncated record header": pcap_file([b"abcd"])[:-10],
    "truncated record": pcap_file([b"abcd" * 10])[:-3],
    "absurd record length": pcap_file([]) + struct.pack("<IIII", 0, 0, 0xFFFFFFF0, 0xFFFFFFF0),
    "pcapng not starting with a section": interface() + section(),
    "pcapng bad byte-order magic": block(0x0A0D0D0A, struct.pack("<IHHq", 0x11223344, 1, 0, -1)),
    "pcapng block length not aligned": section() + struct.pack("<II", 6, 13) + b"\0" * 9,
    "pcapng block length below minimum": section() + struct.pack("<III", 6, 8, 8),
    "pcapng absurd block length": section() + struct.pack("<II", 6, 0xFFFFFFF0) + b"\0" * 16,
    "pcapng truncated block": (section() + interface() + enhanced(b"abcdefgh", 1))[:-8],
    "pcapng trailer mismatch": section() + interface() + enhanced(b"abcd", 1)[:-4] + b"\x99\0\0\0",
    "pcapng packet larger than block": section()
    + interface()
    + block(6, struct.pack("<IIIII", 0, 0, 0, 4000, 4000) + b"abcd"),
    "pcapng unknown interface": section() + interface() + enhanced(b"abcd", 1, if_id=3),
    "pcapng simple packet before interface": section() + block(3, struct.pack("<I", 4) + b"abcd"),
    "pcapng truncated block header": section() + b"\x06\0\0\0",
    "pcapng interface option overrun": section()
    + block(1, struct.pack("<HHI", 1, 0, 0) + struct.pack("<HH", 9, 200)),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_file_raises_capture_error(tmp_path: Path, case: str) -> None:
    path = write(tmp_path, HOSTILE[case])
    with pytest.raises(CaptureError):
        list(read_capture(path))


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_damaged_real_captures_never_raise_anything_else(
    tmp_path: Path, data: st.DataObject
) -> None:
    source = data.draw(
        st.sampled_from([("modbus", "modbus_example.pcap"), ("s7comm", "step7_s300_stop.pcapng")])
    )
    content = bytearray(capture(*source).read_bytes())
    cut = data.draw(st.integers(0, len(content)))
    del content[cut:]
    for _ in range(data.draw(st.integers(0, 8))):
        if content:
            at = data.draw(st.integers(0, len(content) - 1))
            content[at] = data.draw(st.integers(0, 255))
    path = write(tmp_path, bytes(content))
    try:
        for _ts, _linktype, frame in read_capture(path):
            assert len(frame) <= 1 << 24
    except CaptureError:
        pass
