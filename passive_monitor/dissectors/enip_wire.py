"""Bounds-checked little-endian reading for EtherNet/IP and CIP.

Every CIP structure is length- or count-prefixed by the sender, so a hostile
packet can claim anything; reading through one cursor that raises a private
exception keeps each parser short and turns every overrun into a violation in
one place.
"""

from __future__ import annotations

from typing import cast

from passive_monitor.dissectors.base import FieldValue

Fields = dict[str, FieldValue]


class Truncated(Exception):
    """A structure claimed more bytes than the message holds."""


class Cursor:
    """Little-endian reader over one message part."""

    __slots__ = ("data", "offset")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

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
        return int.from_bytes(self.take(size), "little")

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


def append(fields: Fields, name: str, value: int) -> None:
    """Repeated values become tuples, the shape tshark gives a field seen several times."""
    previous = fields.get(name)
    if isinstance(previous, int) and not isinstance(previous, bool):
        fields[name] = (previous, value)
    elif isinstance(previous, tuple):
        # Only this function builds tuples under these names: they hold integers.
        fields[name] = (*cast(tuple[int, ...], previous), value)
    else:
        fields[name] = value
