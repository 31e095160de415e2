"""Bounds-checked little-endian reading for EtherNet/IP and CIP.

Every CIP structure is length- or count-prefixed by the sender, so a hostile
packet can claim anything; reading through one cursor that raises a private
exception keeps each parser short and turns every overrun into a violation in
one place.
"""

from __future__ import annotations

from passive_monitor.dissectors.base import FieldValue

Fields = dict[str, FieldValue]


class Truncated(Exception):
    """A structure claimed more bytes than the message holds."""


class Cursor:
    """Little-endian reader over one message part."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

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
        return int.from_bytes(self.take(size), "little")

    def u8(self) -> int:
        return self.uint(1)

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
        fields[name] = (*(int(item) for item in previous), value)
    else:
        fields[name] = value
