"""Bounds-checked reading of length-prefixed protocol structures.

Industrial PDUs nest parts whose lengths and counts the sender chooses, so a
hostile packet can claim anything. Reading through one cursor that raises a
private exception on overrun keeps each parser short, lets it keep every field
it reached, and turns the overrun into a violation in one place.
"""

from __future__ import annotations

from typing import ClassVar, Literal


class Truncated(Exception):
    """A structure claimed more bytes than the PDU holds."""


class Cursor:
    """Big-endian reader over one PDU part (S7, Modbus, DNP3 headers)."""

    __slots__ = ("data", "offset")
    byteorder: ClassVar[Literal["big", "little"]] = "big"

    def __init__(self, data: bytes, offset: int = 0) -> None:
        self.data = data
        self.offset = offset

    @property
    def remaining(self) -> int:
        return len(self.data) - self.offset

    def take(self, size: int) -> bytes:
        offset = self.offset
        if size < 0 or offset + size > len(self.data):
            raise Truncated(f"needs {size} bytes at offset {offset}, {self.remaining} left")
        self.offset = offset + size
        return self.data[offset : offset + size]

    def uint(self, size: int) -> int:
        return int.from_bytes(self.take(size), self.byteorder)

    def u8(self) -> int:
        """One byte, read without the slice and conversion ``uint`` needs."""
        offset = self.offset
        if offset >= len(self.data):
            raise Truncated(f"needs 1 bytes at offset {offset}, {self.remaining} left")
        self.offset = offset + 1
        return self.data[offset]

    def u16(self) -> int:
        return self.uint(2)

    def u32(self) -> int:
        return self.uint(4)

    def text(self, size: int) -> str:
        """A fixed-size string field, cut at the first NUL since devices pad with zeros."""
        raw = self.take(size)
        return raw.split(b"\x00", 1)[0].decode("latin-1")


class LittleEndianCursor(Cursor):
    """The same reader for little-endian protocols (EtherNet/IP and CIP)."""

    __slots__ = ()
    byteorder: ClassVar[Literal["big", "little"]] = "little"
