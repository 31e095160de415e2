"""Reading frames from capture files and interfaces.

Every source yields ``(timestamp, linktype, frame_bytes)`` so the sensor never
needs to know where a frame came from. Capture files are untrusted input: a
damaged or hostile file stops with :class:`CaptureError`, never with whatever
exception the parsing happened to hit.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from passive_monitor.capture.errors import CaptureError
from passive_monitor.capture.pcap import PCAP_MAGICS, read_pcap
from passive_monitor.capture.pcapng import PCAPNG_MAGIC, read_pcapng

__all__ = ["CaptureError", "Frame", "read_capture"]

Frame = tuple[float, int, bytes]


def read_capture(path: str | Path) -> Iterator[Frame]:
    """Frames of a pcap or pcapng file, chosen by the file's magic number."""
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic in PCAP_MAGICS:
        return read_pcap(path)
    if magic == PCAPNG_MAGIC:
        return read_pcapng(path)
    raise CaptureError(f"{path}: not a pcap or pcapng file (magic {magic.hex() or 'missing'})")
