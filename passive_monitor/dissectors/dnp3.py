"""DNP3 over TCP and UDP: link frames, transport segments, application fragments.

Each link frame becomes one message with tshark's field names. The link
header and every 16-byte data block carry a CRC; a bad CRC is a violation and
keeps that frame's data out of transport reassembly, exactly the bytes a real
outstation would discard. Application fragments are rebuilt from transport
segments per link address pair, and the object headers of a complete fragment
(group, variation, qualifier, range) are decoded so that control, file and
restart operations are visible with the points they target.
"""

from __future__ import annotations

import functools
from struct import unpack_from
from typing import ClassVar

from passive_monitor.dissectors.base import (
    DatagramDissector,
    FieldValue,
    Message,
    StreamDissector,
)
from passive_monitor.dissectors.messages import new_message

DNP3_PORT = 20000
HEADER_LEN = 10
BLOCK = 16
START = b"\x05\x64"
MAX_FRAGMENT = 4096 * 4
# Fragments in progress per direction, one per link address pair; a sender
# cycling through addresses must not grow this without limit.
MAX_PENDING_FRAGMENTS = 16
RESPONSE_FUNCTIONS = frozenset({129, 130, 131})
# Requests whose object headers carry no object data (unless the qualifier
# gives each object a size prefix, as file transport reads do).
HEADER_ONLY_REQUESTS = frozenset({1, 7, 8, 9, 10, 11, 12, 20, 21, 22})


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA6BC if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


CRC_TABLE = _crc_table()


def dnp3_crc(data: bytes | memoryview) -> int:
    """DNP3's CRC-16 (polynomial 0x3D65, reflected, complemented)."""
    crc = 0
    table = CRC_TABLE
    for byte in data:
        crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
    return ~crc & 0xFFFF


# Polling repeats the same blocks endlessly, and a table-driven CRC in Python
# costs a few microseconds per block, so block CRCs are memoised (bounded).
_cached_crc = functools.lru_cache(maxsize=8192)(dnp3_crc)


def frame_length(length_octet: int) -> int:
    """Bytes on the wire of a link frame whose LENGTH octet is *length_octet*."""
    data = max(length_octet - 5, 0)
    return HEADER_LEN + data + 2 * ((data + BLOCK - 1) // BLOCK)


def header_ok(data: bytes) -> bool:
    """A plausible link header: start octets, LENGTH at least 5, good CRC."""
    return (
        len(data) >= HEADER_LEN
        and data[0:2] == START
        and data[2] >= 5
        and _cached_crc(data[0:8]) == unpack_from("<H", data, 8)[0]
    )


# Fixed object sizes in octets, by (group, variation); bit-packed objects are
# listed in PACKED_BITS with their width in bits.
OBJECT_SIZES: dict[tuple[int, int], int] = {
    (1, 2): 1, (2, 1): 1, (2, 2): 7, (2, 3): 3, (3, 2): 1, (4, 1): 1, (4, 2): 7, (4, 3): 3,
    (10, 2): 1, (11, 1): 1, (11, 2): 7, (12, 1): 11, (12, 2): 11, (13, 1): 1, (13, 2): 7,
    (20, 1): 5, (20, 2): 3, (20, 3): 5, (20, 4): 3, (20, 5): 4, (20, 6): 2, (20, 7): 4,
    (20, 8): 2,
    (21, 1): 5, (21, 2): 3, (21, 3): 5, (21, 4): 3, (21, 5): 11, (21, 6): 9, (21, 7): 11,
    (21, 8): 9, (21, 9): 4, (21, 10): 2, (21, 11): 4, (21, 12): 2,
    (22, 1): 5, (22, 2): 3, (22, 3): 5, (22, 4): 3, (22, 5): 11, (22, 6): 9, (22, 7): 11,
    (22, 8): 9,
    (23, 1): 5, (23, 2): 3, (23, 3): 5, (23, 4): 3, (23, 5): 11, (23, 6): 9, (23, 7): 11,
    (23, 8): 9,
    (30, 1): 5, (30, 2): 3, (30, 3): 4, (30, 4): 2, (30, 5): 5, (30, 6): 9,
    (31, 1): 5, (31, 2): 3, (31, 3): 11, (31, 4): 9, (31, 5): 4, (31, 6): 2, (31, 7): 5,
    (31, 8): 9,
    (32, 1): 5, (32, 2): 3, (32, 3): 11, (32, 4): 9, (32, 5): 5, (32, 6): 9, (32, 7): 11,
    (32, 8): 15,
    (33, 1): 5, (33, 2): 3, (33, 3): 11, (33, 4): 9, (33, 5): 5, (33, 6): 9, (33, 7): 11,
    (33, 8): 15,
    (34, 1): 2, (34, 2): 4, (34, 3): 4,
    (40, 1): 5, (40, 2): 3, (40, 3): 5, (40, 4): 9,
    (41, 1): 5, (41, 2): 3, (41, 3): 5, (41, 4): 9,
    (42, 1): 5, (42, 2): 3, (42, 3): 11, (42, 4): 9, (42, 5): 5, (42, 6): 9, (42, 7): 11,
    (42, 8): 15,
    (43, 1): 5, (43, 2): 3, (43, 3): 11, (43, 4): 9, (43, 5): 5, (43, 6): 9, (43, 7): 11,
    (43, 8): 15,
    (50, 1): 6, (50, 2): 10, (50, 3): 6, (50, 4): 11, (51, 1): 6, (51, 2): 6,
    (52, 1): 2, (52, 2): 2,
}  # fmt: skip
PACKED_BITS: dict[tuple[int, int], int] = {(1, 1): 1, (3, 1): 2, (10, 1): 1, (12, 3): 1, (80, 1): 1}
OCTET_STRING_GROUPS = frozenset({110, 111, 112, 113})
CLASS_GROUP = 60


class _Short(Exception):
    """The fragment ended inside an object header or its data."""


def _uint(data: bytes, at: int, size: int) -> int:
    if at + size > len(data):
        raise _Short
    return int.from_bytes(data[at : at + size], "little")


def _append(fields: dict[str, FieldValue], name: str, value: int) -> None:
    old = fields.get(name)
    fields[name] = (*old, value) if isinstance(old, tuple) else (value,)


def _objects(
    data: bytes, at: int, func: int, fields: dict[str, FieldValue], violations: list[str]
) -> None:
    """Object headers of an application fragment, skipping object data by size."""
    with_data = func not in HEADER_ONLY_REQUESTS
    size = len(data)
    try:
        while at < size:
            if at + 3 > size:
                raise _Short
            group, variation, qualifier = data[at], data[at + 1], data[at + 2]
            at += 3
            prefix = (qualifier >> 4) & 0x07
            range_code = qualifier & 0x0F
            _append(fields, "dnp3.al.obj", group << 8 | variation)
            _append(fields, "dnp3.al.objq.prefix", prefix)
            _append(fields, "dnp3.al.objq.range", range_code)
            if range_code <= 2:
                width = 1 << range_code
                start = _uint(data, at, width)
                stop = _uint(data, at + width, width)
                _append(fields, "dnp3.al.range.start", start)
                _append(fields, "dnp3.al.range.stop", stop)
                at += 2 * width
                if stop < start:
                    violations.append(f"object range stop {stop} below start {start}")
                    return
                count = stop - start + 1
            elif range_code <= 5:
                width = 1 << (range_code - 3)
                _append(fields, "dnp3.al.range.abs", _uint(data, at, width))
                at += width
                count = 1
            elif range_code == 6:
                count = 0
            elif range_code in (7, 8, 9, 11):
                width = 1 if range_code == 11 else 1 << (range_code - 7)
                count = _uint(data, at, width)
                _append(fields, "dnp3.al.range.quantity", count)
                at += width
            else:
                violations.append(f"reserved qualifier range code {range_code}")
                return
            if count == 0 or group == CLASS_GROUP or (prefix < 4 and not with_data):
                continue
            skipped = _object_data(data, at, group, variation, prefix, count)
            if skipped is None:
                return
            at = skipped
    except _Short:
        violations.append("application fragment ends inside an object")


def _object_data(
    data: bytes, at: int, group: int, variation: int, prefix: int, count: int
) -> int | None:
    """Offset after *count* objects, or None when their size is not known."""
    key = (group, variation)
    if prefix >= 4:
        width = 1 << (prefix - 4)
        for _ in range(count):
            at += width + _uint(data, at, width)
        if at > len(data):
            raise _Short
        return at
    index = (0, 1, 2, 4)[prefix] if prefix < 4 else 0
    if key in PACKED_BITS and prefix == 0:
        at += (count * PACKED_BITS[key] + 7) // 8
    elif group in OCTET_STRING_GROUPS:
        at += count * (index + variation)
    elif key in OBJECT_SIZES:
        at += count * (index + OBJECT_SIZES[key])
    else:
        return None
    if at > len(data):
        raise _Short
    return at


def _application(fragment: bytes, fields: dict[str, FieldValue], violations: list[str]) -> None:
    """Application control, function code, IIN (responses) and object headers."""
    if len(fragment) < 2:
        violations.append("application fragment shorter than its header")
        return
    control, func = fragment[0], fragment[1]
    fields["dnp3.al.ctl"] = control
    fields["dnp3.al.fir"] = bool(control & 0x80)
    fields["dnp3.al.fin"] = bool(control & 0x40)
    fields["dnp3.al.con"] = bool(control & 0x20)
    fields["dnp3.al.uns"] = bool(control & 0x10)
    fields["dnp3.al.seq"] = control & 0x0F
    fields["dnp3.al.func"] = func
    at = 2
    if func in RESPONSE_FUNCTIONS:
        if len(fragment) < 4:
            violations.append("response without internal indications")
            return
        iin = fragment[2] << 8 | fragment[3]
        fields["dnp3.al.iin"] = iin
        for name, mask in IIN_BITS:
            fields[name] = bool(iin & mask)
        at = 4
    _objects(fragment, at, func, fields, violations)


IIN_BITS = (
    ("dnp3.al.iin.rst", 0x8000),
    ("dnp3.al.iin.dt", 0x4000),
    ("dnp3.al.iin.dol", 0x2000),
    ("dnp3.al.iin.tsr", 0x1000),
    ("dnp3.al.iin.cls3d", 0x0800),
    ("dnp3.al.iin.cls2d", 0x0400),
    ("dnp3.al.iin.cls1d", 0x0200),
    ("dnp3.al.iin.bmsg", 0x0100),
    ("dnp3.al.iin.cc", 0x0020),
    ("dnp3.al.iin.oae", 0x0010),
    ("dnp3.al.iin.ebo", 0x0008),
    ("dnp3.al.iin.pioor", 0x0004),
    ("dnp3.al.iin.obju", 0x0002),
    ("dnp3.al.iin.fcni", 0x0001),
)


class _Link:
    """Link-frame decoding plus transport reassembly for one direction."""

    __slots__ = ("fragments",)

    def __init__(self) -> None:
        self.fragments: dict[tuple[int, int], _Fragment] = {}

    def frame(self, raw: bytes, frame: int, ts: float) -> Message:
        """One complete link frame (``len(raw) == frame_length(raw[2])``)."""
        length, control, dst, src, header_crc = unpack_from("<BBHHH", raw, 2)
        fields: dict[str, FieldValue] = {
            "dnp3.start": 0x0564,
            "dnp3.len": length,
            "dnp3.ctl": control,
            "dnp3.ctl.dir": bool(control & 0x80),
            "dnp3.ctl.prm": bool(control & 0x40),
        }
        if control & 0x40:
            fields["dnp3.ctl.fcb"] = bool(control & 0x20)
            fields["dnp3.ctl.fcv"] = bool(control & 0x10)
            fields["dnp3.ctl.prifunc"] = control & 0x0F
        else:
            fields["dnp3.ctl.dfc"] = bool(control & 0x10)
            fields["dnp3.ctl.secfunc"] = control & 0x0F
        fields["dnp3.dst"] = dst
        fields["dnp3.src"] = src
        fields["dnp3.hdr.CRC"] = header_crc
        violations: list[str] = []
        if _cached_crc(raw[0:8]) != header_crc:
            violations.append("link header CRC mismatch")
        user = bytearray()
        at = HEADER_LEN
        crc_ok = True
        while at < len(raw):
            block = raw[at : min(at + BLOCK, len(raw) - 2)]
            at += len(block)
            (crc,) = unpack_from("<H", raw, at)
            at += 2
            if _cached_crc(block) != crc:
                crc_ok = False
            user += block
        if not crc_ok:
            violations.append("data block CRC mismatch")
        elif user:
            self._transport(bytes(user), (src, dst), fields, violations)
        return new_message("dnp3", frame, ts, bool(control & 0x80), fields, tuple(violations))

    def _transport(
        self,
        user: bytes,
        pair: tuple[int, int],
        fields: dict[str, FieldValue],
        violations: list[str],
    ) -> None:
        tr = user[0]
        fields["dnp3.tr.ctl"] = tr
        fields["dnp3.tr.fin"] = bool(tr & 0x80)
        fields["dnp3.tr.fir"] = bool(tr & 0x40)
        seq = tr & 0x3F
        fields["dnp3.tr.seq"] = seq
        fragments = self.fragments
        if tr & 0x40:
            fragments.pop(pair, None)
            if tr & 0x80:
                _application(user[1:], fields, violations)
                return
            if len(fragments) >= MAX_PENDING_FRAGMENTS:
                del fragments[next(iter(fragments))]
                violations.append("too many partial fragments: the oldest was dropped")
            pending = _Fragment(seq)
            fragments[pair] = pending
        else:
            found = fragments.get(pair)
            if found is None:
                violations.append("transport segment without a first segment")
                return
            pending = found
            if seq != (pending.seq + 1) & 0x3F:
                del fragments[pair]
                violations.append(f"transport sequence {seq} does not follow {pending.seq}")
                return
            pending.seq = seq
        pending.data += user[1:]
        if len(pending.data) > MAX_FRAGMENT:
            del fragments[pair]
            violations.append("application fragment exceeds the reassembly limit")
            return
        if tr & 0x80:
            del fragments[pair]
            _application(bytes(pending.data), fields, violations)


class _Fragment:
    """An application fragment being rebuilt, and its last transport sequence."""

    __slots__ = ("data", "seq")

    def __init__(self, seq: int) -> None:
        self.seq = seq
        self.data = bytearray()


class Dnp3Tcp(StreamDissector):
    """DNP3 over TCP (IEEE 1815 / IEC 62351 port 20000), one instance per connection.

    A segment must begin with a valid link header to be taken as DNP3; the
    rest of a segment that does not is dropped, which resynchronises a
    conversation joined mid-frame on the next segment boundary.
    """

    name: ClassVar[str] = "dnp3"
    ports: ClassVar[frozenset[int]] = frozenset({DNP3_PORT})

    def __init__(self) -> None:
        # Per direction, indexed by ``to_server``.
        self._buffers: list[bytes] = [b"", b""]
        self._links: list[_Link] = [_Link(), _Link()]

    def gap(self, *, to_server: bool) -> None:
        self._buffers[to_server] = b""
        self._links[to_server] = _Link()

    def feed(self, data: bytes, *, to_server: bool, frame: int, ts: float) -> list[Message]:
        buf = self._buffers[to_server]
        if not buf:
            if data[0:2] != START[: len(data[0:2])] or (
                len(data) >= HEADER_LEN and not header_ok(data)
            ):
                return [_garbage(len(data), frame, ts)]
            buf = data
        else:
            buf += data
        link = self._links[to_server]
        messages: list[Message] = []
        offset = 0
        size = len(buf)
        while size - offset >= HEADER_LEN:
            if buf[offset + 2] < 5:
                messages.append(_garbage(size - offset, frame, ts))
                offset = size
                break
            end = offset + frame_length(buf[offset + 2])
            if end > size:
                break
            messages.append(link.frame(buf[offset:end], frame, ts))
            offset = end
        self._buffers[to_server] = buf[offset:]
        return messages


class Dnp3Udp(DatagramDissector):
    """DNP3 over UDP: each datagram holds whole link frames."""

    name: ClassVar[str] = "dnp3"
    ports: ClassVar[frozenset[int]] = frozenset({DNP3_PORT})

    def __init__(self) -> None:
        self._links: list[_Link] = [_Link(), _Link()]

    def parse(self, data: bytes, *, to_server: bool, frame: int, ts: float) -> list[Message]:
        if not header_ok(data):
            return [_garbage(len(data), frame, ts)]
        link = self._links[to_server]
        messages: list[Message] = []
        offset = 0
        while len(data) - offset >= HEADER_LEN and data[offset + 2] >= 5:
            end = offset + frame_length(data[offset + 2])
            if end > len(data):
                messages.append(_garbage(len(data) - offset, frame, ts))
                break
            messages.append(link.frame(data[offset:end], frame, ts))
            offset = end
        return messages


def _garbage(size: int, frame: int, ts: float) -> Message:
    reason = f"not a DNP3 link frame: {size} bytes dropped"
    return new_message("dnp3", frame, ts, None, {}, (reason,))


DISSECTORS = [Dnp3Tcp, Dnp3Udp]
