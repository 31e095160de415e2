"""BACnet application tags and the services an OT monitor needs to read.

Service parameters are a sequence of tagged values (ASHRAE 135 clause 20.2):
one or two octets of tag number, class and length, then the content. Only the
addressing part of the common services is decoded here: which device announces
itself (I-Am), which range is searched (Who-Is), which object and property is
read or written, and why a request failed (Error). Property values are skipped,
since their type depends on the property and they tell an inventory little.
"""

from __future__ import annotations

from typing import NamedTuple, cast

from passive_monitor.dissectors.base import FieldValue

Fields = dict[str, FieldValue]

OPENING = 6
CLOSING = 7
EXTENDED_TAG = 15
EXTENDED_LENGTH = 5
CONTEXT_CLASS = 0x08
BOOLEAN = 1
INSTANCE_BITS = 22
INSTANCE_MASK = (1 << INSTANCE_BITS) - 1

I_AM = 0
WHO_IS = 8
READ_PROPERTY = 12
READ_PROPERTY_MULTIPLE = 14
WRITE_PROPERTY = 15
CONFIRMED_PRIVATE_TRANSFER = 18
UNCONFIRMED_PRIVATE_TRANSFER = 4

OBJECT_TYPE = "bacapp.objectType"
INSTANCE = "bacapp.instance_number"
PROPERTY = "bacapp.property_identifier"
# tshark has no fields of its own for these; the names follow its bacapp prefix.
ARRAY_INDEX = "bacapp.property_array_index"
MAX_APDU = "bacapp.i_am.max_apdu_length"
SEGMENTATION = "bacapp.i_am.segmentation_supported"


class Malformed(Exception):
    """The tagged encoding does not fit the bytes it was given."""


class Tag(NamedTuple):
    """One tagged value: a named tuple, which is cheaper to build than a frozen dataclass.

    Every value read from a datagram makes one, so this is on the per-packet path.
    """

    number: int
    context: bool
    opening: bool
    closing: bool
    content: bytes

    @property
    def unsigned(self) -> int:
        return int.from_bytes(self.content, "big")


class Tags:
    """Sequential reader of tagged values."""

    __slots__ = ("data", "offset")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    def _byte(self) -> int:
        if self.offset >= len(self.data):
            raise Malformed(f"tag runs past the end at offset {self.offset}")
        value = self.data[self.offset]
        self.offset += 1
        return value

    def _bytes(self, size: int) -> bytes:
        if self.offset + size > len(self.data):
            raise Malformed(f"tag content of {size} bytes runs past the end")
        chunk = self.data[self.offset : self.offset + size]
        self.offset += size
        return chunk

    def peek(self) -> Tag | None:
        start = self.offset
        try:
            return self.next() if self.offset < len(self.data) else None
        finally:
            self.offset = start

    def next(self) -> Tag:
        first = self._byte()
        number = first >> 4
        if number == EXTENDED_TAG:
            number = self._byte()
        context = bool(first & CONTEXT_CLASS)
        lvt = first & 0x07
        if context and lvt in (OPENING, CLOSING):
            return Tag(number, context, lvt == OPENING, lvt == CLOSING, b"")
        if not context and number == BOOLEAN:
            return Tag(number, context, False, False, bytes([lvt]))
        if lvt == EXTENDED_LENGTH:
            lvt = self._byte()
            if lvt == 254:
                lvt = int.from_bytes(self._bytes(2), "big")
            elif lvt == 255:
                lvt = int.from_bytes(self._bytes(4), "big")
        return Tag(number, context, False, False, self._bytes(lvt))

    def expect(self, number: int, *, context: bool) -> Tag:
        tag = self.next()
        if tag.number != number or tag.context != context or tag.opening or tag.closing:
            kind = "context" if context else "application"
            raise Malformed(f"expected {kind} tag {number}, found tag {tag.number}")
        return tag

    def optional(self, number: int) -> Tag | None:
        """The next value if it carries this context tag number."""
        tag = self.peek()
        if tag is None or not tag.context or tag.number != number or tag.opening or tag.closing:
            return None
        return self.next()


def _append(fields: Fields, name: str, value: int) -> None:
    previous = fields.get(name, ())
    if isinstance(previous, tuple):
        # Only this function stores these names, so the tuple holds integers.
        fields[name] = (*cast(tuple[int, ...], previous), value)


def _object(tag: Tag, fields: Fields) -> None:
    if len(tag.content) != 4:
        raise Malformed(f"object identifier of {len(tag.content)} bytes")
    value = tag.unsigned
    _append(fields, OBJECT_TYPE, value >> INSTANCE_BITS)
    _append(fields, INSTANCE, value & INSTANCE_MASK)


def _property_reference(tags: Tags, fields: Fields) -> None:
    _append(fields, PROPERTY, tags.expect(1, context=True).unsigned)
    index = tags.optional(2)
    if index is not None:
        fields[ARRAY_INDEX] = index.unsigned


def _private_transfer(tags: Tags, fields: Fields) -> None:
    """Vendor-specific services; the vendor id says whose tooling is talking."""
    fields["bacapp.vendor_identifier"] = tags.expect(0, context=True).unsigned


def confirmed_request(service: int, data: bytes, fields: Fields) -> None:
    tags = Tags(data)
    if service in (READ_PROPERTY, WRITE_PROPERTY):
        _object(tags.expect(0, context=True), fields)
        _property_reference(tags, fields)
    elif service == CONFIRMED_PRIVATE_TRANSFER:
        _private_transfer(tags, fields)
    elif service == READ_PROPERTY_MULTIPLE:
        while tags.peek() is not None:
            _object(tags.expect(0, context=True), fields)
            opening = tags.next()
            if not (opening.opening and opening.number == 1):
                raise Malformed("property reference list does not open with tag 1")
            while (tag := tags.peek()) is not None and not tag.closing:
                _append(fields, PROPERTY, tags.expect(0, context=True).unsigned)
                tags.optional(1)
            tags.next()


def complex_ack(service: int, data: bytes, fields: Fields) -> None:
    if service == READ_PROPERTY:
        tags = Tags(data)
        _object(tags.expect(0, context=True), fields)
        _property_reference(tags, fields)


def unconfirmed_request(service: int, data: bytes, fields: Fields) -> None:
    tags = Tags(data)
    if service == I_AM:
        _object(tags.expect(12, context=False), fields)
        fields[MAX_APDU] = tags.expect(2, context=False).unsigned
        fields[SEGMENTATION] = tags.expect(9, context=False).unsigned
        fields["bacapp.vendor_identifier"] = tags.expect(2, context=False).unsigned
    elif service == UNCONFIRMED_PRIVATE_TRANSFER:
        _private_transfer(tags, fields)
    elif service == WHO_IS and data:
        fields["bacapp.who_is.low_limit"] = tags.expect(0, context=True).unsigned
        fields["bacapp.who_is.high_limit"] = tags.expect(1, context=True).unsigned


def error(data: bytes, fields: Fields) -> None:
    """Error class and code, possibly wrapped in a constructed context tag 0."""
    tags = Tags(data)
    first = tags.peek()
    if first is not None and first.opening:
        tags.next()
    fields["bacapp.error_class"] = tags.expect(9, context=False).unsigned
    fields["bacapp.error_code"] = tags.expect(9, context=False).unsigned
