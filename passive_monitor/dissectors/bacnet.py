"""BACnet/IP on UDP 47808: BVLC, NPDU and APDU headers.

Each datagram is a BVLC header (type 0x81, function, length), an NPDU whose
control octet says which optional routing fields follow (ASHRAE 135 clause 6.2:
DNET/DLEN/DADR, then SNET/SLEN/SADR, then the hop count when a destination is
present, then a network-layer message type), and, unless the NPDU is a network
message, an APDU. Building automation networks routinely route between
BACnet/IP and MS/TP, so the routing fields are what tell which field-bus device
is behind a router.
"""

from __future__ import annotations

from typing import ClassVar

from passive_monitor.dissectors import bacnet_services
from passive_monitor.dissectors.bacnet_services import Fields, Malformed
from passive_monitor.dissectors.base import DatagramDissector, Message
from passive_monitor.dissectors.messages import new_message

BVLC_TYPE = 0x81
BVLC_HEADER = 4
BVLC_RESULT = 0x00
FORWARDED_NPDU = 0x04
REGISTER_FOREIGN_DEVICE = 0x05
NPDU_FUNCTIONS = frozenset({FORWARDED_NPDU, 0x09, 0x0A, 0x0B})

NETWORK_MESSAGE = 0x80
DESTINATION = 0x20
SOURCE = 0x08
PROPRIETARY_MESSAGES = 0x80
MSTP_ADDRESS = 1
ETHERNET_ADDRESS = 6

CONFIRMED, UNCONFIRMED, SIMPLE_ACK, COMPLEX_ACK = 0, 1, 2, 3
SEGMENT_ACK, ERROR, REJECT, ABORT = 4, 5, 6, 7
SEGMENTED = 0x08
MORE_FOLLOWS = 0x04
SEGMENTED_RESPONSE_ACCEPTED = 0x02
NEGATIVE_ACK = 0x02
FROM_SERVER = 0x01


class Short(Exception):
    """A header ends before its fixed fields do."""


class _Octets:
    __slots__ = ("data", "offset")

    def __init__(self, data: bytes, offset: int = 0) -> None:
        self.data = data
        self.offset = offset

    def take(self, size: int) -> bytes:
        offset = self.offset
        if offset + size > len(self.data):
            raise Short(f"needs {size} bytes at offset {offset}")
        self.offset = offset + size
        return self.data[offset : offset + size]

    def uint(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big")

    def u8(self) -> int:
        """One octet; most header fields are one, so this skips the slice."""
        offset = self.offset
        if offset >= len(self.data):
            raise Short(f"needs 1 bytes at offset {offset}")
        self.offset = offset + 1
        return self.data[offset]

    def rest(self) -> bytes:
        return self.take(len(self.data) - self.offset)


class BacnetDissector(DatagramDissector):
    """BACnet/IP datagrams; requests are confirmed and unconfirmed service requests."""

    name: ClassVar[str] = "bacnet"
    ports: ClassVar[frozenset[int]] = frozenset({47808})

    def parse(self, data: bytes, *, to_server: bool, frame: int, ts: float) -> list[Message]:
        fields: Fields = {}
        violations: list[str] = []
        is_request: bool | None = None
        try:
            is_request = _bvlc(_Octets(data), fields, violations)
        except (Short, Malformed) as error:
            violations.append(f"truncated or malformed: {error}")
        return [new_message("bacnet", frame, ts, is_request, fields, tuple(violations))]


def _bvlc(octets: _Octets, fields: Fields, violations: list[str]) -> bool | None:
    kind = octets.u8()
    fields["bvlc.type"] = kind
    if kind != BVLC_TYPE:
        violations.append(f"BVLC type {kind:#04x} is not BACnet/IP")
        return None
    function = octets.u8()
    length = octets.uint(2)
    fields["bvlc.function"] = function
    fields["bvlc.length"] = length
    if length != len(octets.data):
        violations.append(f"BVLC length {length}, datagram holds {len(octets.data)} bytes")
    if function == BVLC_RESULT:
        fields["bvlc.result"] = octets.uint(2)
        return False
    if function == REGISTER_FOREIGN_DEVICE:
        fields["bvlc.reg_ttl"] = octets.uint(2)
        return True
    if function not in NPDU_FUNCTIONS:
        return None
    if function == FORWARDED_NPDU:
        fields["bvlc.fwd_ip"] = ".".join(str(part) for part in octets.take(4))
        fields["bvlc.fwd_port"] = octets.uint(2)
    return _npdu(octets, fields, violations)


def _address(octets: _Octets, prefix: str, fields: Fields) -> None:
    """DNET/DLEN/DADR or SNET/SLEN/SADR; the address is typed by its length as tshark does."""
    fields[f"bacnet.{prefix}net"] = octets.uint(2)
    size = octets.u8()
    fields[f"bacnet.{prefix}len"] = size
    address = octets.take(size)
    if size == MSTP_ADDRESS:
        fields[f"bacnet.{prefix}adr_mstp"] = address[0]
    elif size == ETHERNET_ADDRESS:
        fields[f"bacnet.{prefix}adr_eth"] = ":".join(f"{part:02x}" for part in address)
    elif size:
        fields[f"bacnet.{prefix}adr_tmp"] = address


def _npdu(octets: _Octets, fields: Fields, violations: list[str]) -> bool | None:
    fields["bacnet.version"] = octets.u8()
    control = octets.u8()
    fields["bacnet.control"] = control
    if control & DESTINATION:
        _address(octets, "d", fields)
    if control & SOURCE:
        _address(octets, "s", fields)
    if control & DESTINATION:
        fields["bacnet.hopc"] = octets.u8()
    if control & NETWORK_MESSAGE:
        message = octets.u8()
        fields["bacnet.mesgtyp"] = message
        if message >= PROPRIETARY_MESSAGES:
            fields["bacnet.vendor"] = octets.uint(2)
        return None
    return _apdu(octets, fields, violations)


def _apdu(octets: _Octets, fields: Fields, violations: list[str]) -> bool | None:
    first = octets.u8()
    kind, flags = first >> 4, first & 0x0F
    fields["bacapp.type"] = kind
    if kind == CONFIRMED:
        fields["bacapp.pduflags"] = flags
        fields["bacapp.segmented_request"] = bool(flags & SEGMENTED)
        fields["bacapp.more_segments"] = bool(flags & MORE_FOLLOWS)
        fields["bacapp.SA"] = bool(flags & SEGMENTED_RESPONSE_ACCEPTED)
        limits = octets.u8()
        fields["bacapp.response_segments"] = (limits >> 4) & 0x07
        fields["bacapp.max_adpu_size"] = limits & 0x0F
        fields["bacapp.invoke_id"] = octets.u8()
        _segment(flags, octets, fields)
        service = octets.u8()
        fields["bacapp.confirmed_service"] = service
        if not flags & SEGMENTED:
            bacnet_services.confirmed_request(service, octets.rest(), fields)
        return True
    if kind == UNCONFIRMED:
        service = octets.u8()
        fields["bacapp.unconfirmed_service"] = service
        bacnet_services.unconfirmed_request(service, octets.rest(), fields)
        return True
    if kind in (SIMPLE_ACK, COMPLEX_ACK, ERROR):
        if kind == COMPLEX_ACK:
            fields["bacapp.pduflags"] = flags
            fields["bacapp.segmented_request"] = bool(flags & SEGMENTED)
            fields["bacapp.more_segments"] = bool(flags & MORE_FOLLOWS)
        fields["bacapp.invoke_id"] = octets.u8()
        if kind == COMPLEX_ACK:
            _segment(flags, octets, fields)
        service = octets.u8()
        fields["bacapp.confirmed_service"] = service
        if kind == ERROR:
            bacnet_services.error(octets.rest(), fields)
        elif kind == COMPLEX_ACK and not flags & SEGMENTED:
            bacnet_services.complex_ack(service, octets.rest(), fields)
        return False
    if kind == SEGMENT_ACK:
        fields["bacapp.NAK"] = bool(flags & NEGATIVE_ACK)
        fields["bacapp.SRV"] = bool(flags & FROM_SERVER)
        fields["bacapp.invoke_id"] = octets.u8()
        fields["bacapp.sequence_number"] = octets.u8()
        fields["bacapp.window_size"] = octets.u8()
        return not flags & FROM_SERVER
    if kind in (REJECT, ABORT):
        if kind == ABORT:
            fields["bacapp.SRV"] = bool(flags & FROM_SERVER)
        fields["bacapp.invoke_id"] = octets.u8()
        reason = "bacapp.reject_reason" if kind == REJECT else "bacapp.abort_reason"
        fields[reason] = octets.u8()
        return False
    violations.append(f"unknown APDU type {kind}")
    return None


def _segment(flags: int, octets: _Octets, fields: Fields) -> None:
    """Sequence number and proposed window size, present only in segmented PDUs."""
    if flags & SEGMENTED:
        fields["bacapp.sequence_number"] = octets.u8()
        fields["bacapp.window_size"] = octets.u8()


DISSECTORS = [BacnetDissector]
