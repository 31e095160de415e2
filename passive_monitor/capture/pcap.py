"""Classic libpcap files (both byte orders, micro- and nanosecond stamps).

Record lengths come straight from the file, so each one is checked against the
snapshot length and what is left of the file before any slicing: a hostile
length must end the read with a precise error rather than a huge allocation.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

from passive_monitor.capture.errors import CaptureError
from passive_monitor.capture.filemap import mapped

MAGIC_US_LE = b"\xd4\xc3\xb2\xa1"
MAGIC_US_BE = b"\xa1\xb2\xc3\xd4"
MAGIC_NS_LE = b"\x4d\x3c\xb2\xa1"
MAGIC_NS_BE = b"\xa1\xb2\x3c\x4d"
PCAP_MAGICS = frozenset({MAGIC_US_LE, MAGIC_US_BE, MAGIC_NS_LE, MAGIC_NS_BE})

FILE_HEADER_LEN = 24
RECORD_HEADER_LEN = 16
# libpcap's own ceiling for a snapshot length; a larger record is not a packet.
MAX_RECORD_LEN = 262_144


def read_pcap(path: str | Path) -> Iterator[tuple[float, int, bytes]]:
    """Yield ``(ts, linktype, frame)`` for each record of a pcap file."""
    with mapped(path) as data:
        size = len(data)
        if size < FILE_HEADER_LEN:
            raise CaptureError(f"{path}: truncated pcap file header ({size} bytes)")
        magic = bytes(data[:4])
        if magic not in PCAP_MAGICS:
            raise CaptureError(f"{path}: bad pcap magic {magic.hex()}")
        order = "<" if magic in (MAGIC_US_LE, MAGIC_NS_LE) else ">"
        scale = 1e-9 if magic in (MAGIC_NS_LE, MAGIC_NS_BE) else 1e-6
        major, _minor, _zone, _sigfigs, snaplen, network = struct.unpack_from(
            order + "HHiIII", data, 4
        )
        if major != 2:
            raise CaptureError(f"{path}: unsupported pcap version {major}")
        linktype = network & 0x0FFFFFFF
        limit = max(MAX_RECORD_LEN, min(snaplen, 1 << 24))
        record = struct.Struct(order + "IIII")
        unpack = record.unpack_from
        offset = FILE_HEADER_LEN
        while offset < size:
            if offset + RECORD_HEADER_LEN > size:
                raise CaptureError(f"{path}: truncated record header at offset {offset}")
            sec, frac, incl_len, _orig_len = unpack(data, offset)
            if incl_len > limit:
                raise CaptureError(
                    f"{path}: record at offset {offset} claims {incl_len} bytes (limit {limit})"
                )
            start = offset + RECORD_HEADER_LEN
            end = start + incl_len
            if end > size:
                raise CaptureError(
                    f"{path}: truncated record at offset {offset}: "
                    f"{incl_len} bytes claimed, {size - start} left"
                )
            yield sec + frac * scale, linktype, data[start:end]
            offset = end
