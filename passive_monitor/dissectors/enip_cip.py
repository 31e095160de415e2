"""CIP explicit messages: service, EPATH and status.

What a CIP request does is named by its service code and the object it is
addressed to (class, instance, attribute in the EPATH); a response carries the
service with bit 7 set and a general status. Requests that wrap other requests
(Multiple Service Packet, Unconnected Send) are opened so that a Stop or a
Set Attribute hidden inside one is still seen.
"""

from __future__ import annotations

from passive_monitor.dissectors.cursor import LittleEndianCursor as Cursor
from passive_monitor.dissectors.cursor import Truncated
from passive_monitor.dissectors.enip_fields import Fields, append

RESPONSE_BIT = 0x80
MULTIPLE_SERVICE_PACKET = 0x0A
GET_ATTRIBUTE_LIST = 0x03
SET_ATTRIBUTE_LIST = 0x04
UNCONNECTED_SEND = 0x52
CONNECTION_MANAGER = 0x06
MAX_NESTING = 4

# Logical segment type (bits 4-2) -> tshark field.
LOGICAL_FIELDS: dict[int, str] = {
    0x00: "cip.class",
    0x04: "cip.instance",
    0x08: "cip.member",
    0x0C: "cip.connpoint",
    0x10: "cip.attribute",
}
LOGICAL_SIZES = (1, 2, 4)
SEGMENT_TYPE = 0xE0
PORT_SEGMENT = 0x00
LOGICAL_SEGMENT = 0x20
NETWORK_SEGMENT = 0x40
DATA_SEGMENT = 0x80
ANSI_SYMBOL = 0x91
ELECTRONIC_KEY = 0x34
EXTENDED_LINK = 0x10
EXTENDED_PORT = 0x0F


def message(data: bytes, fields: Fields, violations: list[str], depth: int = 0) -> None:
    """One CIP request or response; nested ones append to the same fields."""
    cip = Cursor(data)
    try:
        service = cip.u8()
        append(fields, "cip.service", service)
        append(fields, "cip.sc", service & 0x7F)
        if service & RESPONSE_BIT:
            _response(service & 0x7F, cip, fields, violations, depth)
        else:
            _request(service, cip, fields, violations, depth)
    except Truncated as error:
        violations.append(f"CIP message truncated: {error}")


def _request(service: int, cip: Cursor, fields: Fields, violations: list[str], depth: int) -> None:
    path = Cursor(cip.take(2 * cip.u8()))
    segments = epath(path, fields)
    if depth >= MAX_NESTING:
        violations.append("CIP requests nested too deeply")
        return
    target = segments.get("cip.class")
    if service == MULTIPLE_SERVICE_PACKET:
        _embedded(Cursor(cip.data[cip.offset :]), fields, violations, depth)
    elif service == GET_ATTRIBUTE_LIST:
        for _ in range(cip.u16()):
            append(fields, "cip.attribute", cip.u16())
    elif service == SET_ATTRIBUTE_LIST and cip.u16():
        # Values follow each identifier and their sizes depend on the class, so only
        # the first identifier can be located without a per-class attribute table.
        append(fields, "cip.attribute", cip.u16())
    elif service == UNCONNECTED_SEND and target == CONNECTION_MANAGER:
        cip.take(2)
        message(cip.take(cip.u16()), fields, violations, depth + 1)


def _response(service: int, cip: Cursor, fields: Fields, violations: list[str], depth: int) -> None:
    cip.u8()
    append(fields, "cip.genstat", cip.u8())
    cip.take(2 * cip.u8())
    if service == MULTIPLE_SERVICE_PACKET and cip.remaining and depth < MAX_NESTING:
        _embedded(Cursor(cip.data[cip.offset :]), fields, violations, depth)


def _embedded(services: Cursor, fields: Fields, violations: list[str], depth: int) -> None:
    """Multiple Service Packet body: a count, offsets from its start, then the messages."""
    count = services.u16()
    offsets = [services.u16() for _ in range(count)]
    ends = [*offsets[1:], len(services.data)]
    for start, end in zip(offsets, ends, strict=True):
        if not 0 < start < end <= len(services.data):
            violations.append(f"Multiple Service Packet offset {start} out of range")
            return
        message(services.data[start:end], fields, violations, depth + 1)


def epath(path: Cursor, fields: Fields) -> dict[str, int]:
    """Padded EPATH segments; logical ones land in fields, the first of each is returned."""
    first: dict[str, int] = {}
    while path.remaining:
        segment = path.u8()
        append(fields, "cip.path_segment", segment)
        kind = segment & SEGMENT_TYPE
        if kind == LOGICAL_SEGMENT and segment != ELECTRONIC_KEY:
            name = LOGICAL_FIELDS.get(segment & 0x1C)
            size_code = segment & 0x03
            if name is None or size_code >= len(LOGICAL_SIZES):
                return first
            size = LOGICAL_SIZES[size_code]
            if size > 1:
                path.u8()
            value = path.uint(size)
            append(fields, name, value)
            first.setdefault(name, value)
        elif segment == ELECTRONIC_KEY:
            path.take(1 + 8)
        elif kind == PORT_SEGMENT:
            _port(segment, path)
        elif segment == ANSI_SYMBOL:
            length = path.u8()
            path.take(length + length % 2)
        elif kind in (NETWORK_SEGMENT, DATA_SEGMENT):
            path.take(path.remaining)
        else:
            return first
    return first


def _port(segment: int, path: Cursor) -> None:
    link_size = path.u8() if segment & EXTENDED_LINK else 1
    if segment & EXTENDED_PORT == EXTENDED_PORT:
        path.u16()
    path.take(link_size)
    if segment & EXTENDED_LINK and link_size % 2:
        path.u8()
