"""Bounds-checked reading of S7 structures.

S7 parameters nest several length-prefixed parts; reading them through one
cursor that raises a private exception on overrun lets each parser keep every
field it reached and turn the overrun into a violation at a single place.
"""

from __future__ import annotations


class Truncated(Exception):
    """A structure claimed more bytes than the PDU holds."""


class Cursor:
    """Big-endian reader over one PDU part."""

    __slots__ = ("data", "offset")

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
        return int.from_bytes(self.take(size), "big")

    def u8(self) -> int:
        """One byte, read without the slice and conversion ``uint`` needs."""
        offset = self.offset
        if offset >= len(self.data):
            raise Truncated(f"needs 1 bytes at offset {offset}, {self.remaining} left")
        self.offset = offset + 1
        return self.data[offset]

    def u16(self) -> int:
        return self.uint(2)

    def text(self, size: int) -> str:
        """A fixed-size S7 string field, cut at the first NUL as the PLC pads with zeros."""
        raw = self.take(size)
        return raw.split(b"\x00", 1)[0].decode("latin-1")
