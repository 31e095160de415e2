"""pcapng files: section, interface, enhanced/simple/obsolete packet blocks.

Each block carries its own length twice; both copies, the 4-byte alignment and
the room left in the file are checked before the body is read, so a damaged
file is reported at the exact block that broke. Blocks that carry no packets
(statistics, name resolution, custom) are skipped by their length.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

from passive_monitor.capture.errors import CaptureError
from passive_monitor.capture.filemap import mapped

PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
SECTION_HEADER = 0x0A0D0D0A
INTERFACE_DESCRIPTION = 0x00000001
OBSOLETE_PACKET = 0x00000002
SIMPLE_PACKET = 0x00000003
ENHANCED_PACKET = 0x00000006
BYTE_ORDER_MAGIC = 0x1A2B3C4D
MAX_BLOCK_LEN = 16 << 20
OPT_END = 0
OPT_IF_TSRESOL = 9
OPT_IF_TSOFFSET = 14


class _Interface:
    __slots__ = ("linktype", "offset", "scale", "snaplen")

    def __init__(self, linktype: int, snaplen: int, scale: float, offset: int) -> None:
        self.linktype = linktype
        self.snaplen = snaplen
        self.scale = scale
        self.offset = offset


def _interface(path: str | Path, body: bytes, order: str, at: int) -> _Interface:
    """An interface description; its options set the timestamp resolution."""
    if len(body) < 8:
        raise CaptureError(f"{path}: interface block at offset {at} too short")
    linktype, _reserved, snaplen = struct.unpack_from(order + "HHI", body, 0)
    scale = 1e-6
    offset = 0
    pos = 8
    while pos + 4 <= len(body):
        code, length = struct.unpack_from(order + "HH", body, pos)
        pos += 4
        if code == OPT_END:
            break
        if pos + length > len(body):
            raise CaptureError(f"{path}: interface option overruns its block at offset {at}")
        if code == OPT_IF_TSRESOL and length >= 1:
            resol = body[pos]
            scale = 2.0 ** -(resol & 0x7F) if resol & 0x80 else 10.0 ** -(resol & 0x7F)
        elif code == OPT_IF_TSOFFSET and length == 8:
            (offset,) = struct.unpack_from(order + "q", body, pos)
        pos += (length + 3) & ~3
    return _Interface(linktype, snaplen, scale, offset)


def read_pcapng(path: str | Path) -> Iterator[tuple[float, int, bytes]]:
    """Yield ``(ts, linktype, frame)`` for each packet block of a pcapng file."""
    with mapped(path) as data:
        size = len(data)
        order = "<"
        interfaces: list[_Interface] = []
        offset = 0
        first = True
        while offset < size:
            if offset + 12 > size:
                raise CaptureError(f"{path}: truncated block header at offset {offset}")
            head = bytes(data[offset : offset + 12])
            if head[:4] == PCAPNG_MAGIC:
                (bom,) = struct.unpack_from("<I", head, 8)
                if bom == BYTE_ORDER_MAGIC:
                    order = "<"
                elif bom == struct.unpack("<I", struct.pack(">I", BYTE_ORDER_MAGIC))[0]:
                    order = ">"
                else:
                    raise CaptureError(f"{path}: bad byte-order magic at offset {offset}")
                interfaces = []
                first = False
            elif first:
                raise CaptureError(f"{path}: bad pcapng magic {head[:4].hex()}")
            block_type, total = struct.unpack_from(order + "II", head, 0)
            if total < 12 or total % 4 or total > MAX_BLOCK_LEN:
                raise CaptureError(f"{path}: absurd block length {total} at offset {offset}")
            if offset + total > size:
                raise CaptureError(
                    f"{path}: truncated block at offset {offset}: {total} bytes claimed, "
                    f"{size - offset} left"
                )
            (trailer,) = struct.unpack_from(order + "I", data, offset + total - 4)
            if trailer != total:
                raise CaptureError(
                    f"{path}: block at offset {offset} ends with length {trailer}, not {total}"
                )
            body_start = offset + 8
            body_end = offset + total - 4
            if block_type in (ENHANCED_PACKET, OBSOLETE_PACKET):
                if body_end - body_start < 20:
                    raise CaptureError(f"{path}: packet block at offset {offset} too short")
                if block_type == ENHANCED_PACKET:
                    if_id, high, low, cap_len, _orig = struct.unpack_from(
                        order + "IIIII", data, body_start
                    )
                else:
                    if_id, _drops, high, low, cap_len, _orig = struct.unpack_from(
                        order + "HHIIII", data, body_start
                    )
                if if_id >= len(interfaces):
                    raise CaptureError(f"{path}: packet at offset {offset} names no interface")
                if cap_len > body_end - body_start - 20:
                    raise CaptureError(
                        f"{path}: packet at offset {offset} claims {cap_len} bytes, "
                        f"block holds {body_end - body_start - 20}"
                    )
                iface = interfaces[if_id]
                ts = ((high << 32) | low) * iface.scale + iface.offset
                start = body_start + 20
                yield ts, iface.linktype, data[start : start + cap_len]
            elif block_type == SIMPLE_PACKET:
                if not interfaces:
                    raise CaptureError(f"{path}: simple packet at offset {offset} before interface")
                (orig_len,) = struct.unpack_from(order + "I", data, body_start)
                iface = interfaces[0]
                room = body_end - body_start - 4
                cap_len = min(orig_len, room, iface.snaplen or room)
                start = body_start + 4
                yield 0.0, iface.linktype, data[start : start + cap_len]
            elif block_type == INTERFACE_DESCRIPTION:
                interfaces.append(_interface(path, bytes(data[body_start:body_end]), order, offset))
            offset += total
