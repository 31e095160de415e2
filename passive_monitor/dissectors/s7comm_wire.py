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

    def __init__(self, data: bytes, offset: int = 0) -> None:
        self.data = data
        self.offset = offset

    @property
    def remaining(self) -> int:
        return len(self.data) - self.offset

    def take(self, size: int) -> bytes:
        if size < 0 or self.offset + size > len(self.data):
            raise Truncated(f"needs {size} bytes at offset {self.offset}, {self.remaining} left")
        chunk = self.data[self.offset : self.offset + size]
        self.offset += size
        return chunk

    def uint(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big")

    def u8(self) -> int:
        return self.uint(1)

    def u16(self) -> int:
        return self.uint(2)

    def text(self, size: int) -> str:
        """A fixed-size S7 string field, cut at the first NUL as the PLC pads with zeros."""
        raw = self.take(size)
        return raw.split(b"\x00", 1)[0].decode("latin-1")
