"""EtherNet/IP encapsulation over TCP and UDP 44818, and cyclic I/O on UDP 2222.

Every explicit message carries a 24-byte encapsulation header (command, length,
session handle, status, sender context, options) followed by command data,
usually a Common Packet Format list whose data item holds a CIP message.
ListIdentity answers name the device (vendor, product, revision, serial), which
feeds the asset inventory without probing anything.

The encapsulation header has no magic number, so after a gap the stream is
resynchronised on a known command code with a plausible length and options word.
"""

from __future__ import annotations

from typing import ClassVar

from passive_monitor.dissectors import enip_cip
from passive_monitor.dissectors.base import DatagramDissector, Message, ResyncingStreamDissector
from passive_monitor.dissectors.cursor import LittleEndianCursor as Cursor
from passive_monitor.dissectors.cursor import Truncated
from passive_monitor.dissectors.enip_fields import Fields, append
from passive_monitor.dissectors.messages import new_message

HEADER = 24
NOP = 0x0000
LIST_SERVICES = 0x0004
LIST_IDENTITY = 0x0063
LIST_INTERFACES = 0x0064
REGISTER_SESSION = 0x0065
UNREGISTER_SESSION = 0x0066
SEND_RR_DATA = 0x006F
SEND_UNIT_DATA = 0x0070
INDICATE_STATUS = 0x0072
CANCEL = 0x0073
COMMANDS = frozenset(
    {
        NOP,
        LIST_SERVICES,
        LIST_IDENTITY,
        LIST_INTERFACES,
        REGISTER_SESSION,
        UNREGISTER_SESSION,
        SEND_RR_DATA,
        SEND_UNIT_DATA,
        INDICATE_STATUS,
        CANCEL,
    }
)

ITEM_CONNECTED_ADDRESS = 0x00A1
ITEM_CONNECTED_DATA = 0x00B1
ITEM_UNCONNECTED_DATA = 0x00B2
ITEM_IDENTITY = 0x000C
ITEM_SEQUENCED_ADDRESS = 0x8002
SOCKET_ADDRESS = 16


class EnipDissector(ResyncingStreamDissector):
    """One EtherNet/IP TCP session between a scanner or tool and an adapter."""

    name: ClassVar[str] = "enip"
    ports: ClassVar[frozenset[int]] = frozenset({44818})

    def feed(self, data: bytes, *, to_server: bool, frame: int, ts: float) -> list[Message]:
        buffer = self._buffers[to_server]
        buffer += data
        messages: list[Message] = []
        while len(buffer) >= HEADER:
            skipped = _next_header(buffer)
            if skipped:
                del buffer[:skipped]
                if not self._hunting[to_server]:
                    violation = f"{skipped} bytes outside any encapsulation header skipped"
                    messages.append(new_message("enip", frame, ts, None, {}, (violation,)))
                self._hunting[to_server] = True
                continue
            size = HEADER + int.from_bytes(buffer[2:4], "little")
            if len(buffer) < size:
                break
            pdu = bytes(buffer[:size])
            del buffer[:size]
            self._hunting[to_server] = False
            fields, violations = encapsulation(pdu, to_server=to_server)
            messages.append(new_message("enip", frame, ts, to_server, fields, tuple(violations)))
        return messages


def _next_header(buffer: bytearray) -> int:
    """Offset of the first plausible header; the whole undecidable prefix if none."""
    last = len(buffer) - HEADER
    for offset in range(last + 1):
        if _plausible_header(buffer, offset):
            return offset
    return last + 1


def _plausible_header(buffer: bytearray, offset: int) -> bool:
    command = int.from_bytes(buffer[offset : offset + 2], "little")
    options = int.from_bytes(buffer[offset + 20 : offset + 24], "little")
    return command in COMMANDS and options == 0


class EnipUdpDissector(DatagramDissector):
    """ListIdentity broadcasts and their answers on UDP 44818."""

    name: ClassVar[str] = "enip"
    ports: ClassVar[frozenset[int]] = frozenset({44818})

    def parse(self, data: bytes, *, to_server: bool, frame: int, ts: float) -> list[Message]:
        if len(data) < HEADER:
            violation = f"datagram of {len(data)} bytes is shorter than an encapsulation header"
            return [new_message("enip", frame, ts, to_server, {}, (violation,))]
        fields, violations = encapsulation(data, to_server=to_server)
        return [new_message("enip", frame, ts, to_server, fields, tuple(violations))]


class CipIoDissector(DatagramDissector):
    """Implicit (cyclic I/O) messages: a CPF list without encapsulation header."""

    name: ClassVar[str] = "cipio"
    ports: ClassVar[frozenset[int]] = frozenset({2222})

    def parse(self, data: bytes, *, to_server: bool, frame: int, ts: float) -> list[Message]:
        fields: Fields = {}
        violations: list[str] = []
        try:
            _cpf(Cursor(data), SEND_UNIT_DATA, fields, violations, cyclic=True)
        except Truncated as error:
            violations.append(f"truncated: {error}")
        return [new_message("cipio", frame, ts, None, fields, tuple(violations))]


def encapsulation(pdu: bytes, *, to_server: bool) -> tuple[Fields, list[str]]:
    """Header and command data of one encapsulation message; never raises."""
    header = Cursor(pdu[:HEADER])
    command = header.u16()
    length = header.u16()
    fields: Fields = {
        "enip.command": command,
        "enip.length": length,
        "enip.session": header.u32(),
        "enip.status": header.u32(),
    }
    context = header.take(8)
    if command == LIST_IDENTITY and to_server:
        fields["enip.listid_delay"] = int.from_bytes(context[:2], "little")
        context = context[2:]
    fields["enip.context"] = context
    fields["enip.options"] = header.u32()
    violations: list[str] = []
    body = pdu[HEADER:]
    if len(body) != length:
        violations.append(f"encapsulation length {length}, {len(body)} bytes follow")
    if command not in COMMANDS:
        violations.append(f"unknown encapsulation command {command:#06x}")
        return fields, violations
    try:
        _command_data(command, Cursor(body), fields, violations)
    except Truncated as error:
        violations.append(f"truncated: {error}")
    return fields, violations


def _command_data(command: int, body: Cursor, fields: Fields, violations: list[str]) -> None:
    if not body.remaining:
        return
    if command == REGISTER_SESSION:
        fields["enip.rs.version"] = body.u16()
        fields["enip.rs.flags"] = body.u16()
    elif command in (SEND_RR_DATA, SEND_UNIT_DATA):
        name = "enip.srrd.iface" if command == SEND_RR_DATA else "enip.sud.iface"
        fields[name] = body.u32()
        fields["enip.timeout"] = body.u16()
        _cpf(body, command, fields, violations, cyclic=False)
    elif command in (LIST_IDENTITY, LIST_SERVICES, LIST_INTERFACES):
        _cpf(body, command, fields, violations, cyclic=False)


def _cpf(
    body: Cursor, command: int, fields: Fields, violations: list[str], *, cyclic: bool
) -> None:
    """Common Packet Format: a count of typed, length-prefixed items."""
    count = body.u16()
    fields["enip.cpf.itemcount"] = count
    for _ in range(count):
        kind = body.u16()
        item = Cursor(body.take(body.u16()))
        append(fields, "enip.cpf.typeid", kind)
        append(fields, "enip.cpf.length", len(item.data))
        if kind == ITEM_CONNECTED_ADDRESS:
            fields["enip.cpf.cai.connid"] = item.u32()
        elif kind == ITEM_SEQUENCED_ADDRESS:
            fields["enip.cpf.sai.connid"] = item.u32()
            fields["enip.cpf.sai.seq"] = item.u32()
        elif kind == ITEM_UNCONNECTED_DATA:
            enip_cip.message(item.data, fields, violations)
        elif kind == ITEM_CONNECTED_DATA and command == SEND_UNIT_DATA and not cyclic:
            item.u16()
            enip_cip.message(item.data[item.offset :], fields, violations)
        elif kind == ITEM_IDENTITY:
            _identity(item, fields)


def _identity(item: Cursor, fields: Fields) -> None:
    """ListIdentity item: what the device says it is."""
    fields["enip.encapver"] = item.u16()
    item.take(SOCKET_ADDRESS)
    fields["enip.lir.vendor"] = item.u16()
    fields["enip.lir.devtype"] = item.u16()
    fields["enip.lir.prodcode"] = item.u16()
    major, minor = item.u8(), item.u8()
    fields["enip.lir.revision"] = major << 8 | minor
    fields["enip.lir.revision_major"] = major
    fields["enip.lir.revision_minor"] = minor
    fields["enip.lir.status"] = item.u16()
    fields["enip.lir.serial"] = item.u32()
    fields["enip.lir.name"] = item.take(item.u8()).decode("latin-1")
    fields["enip.lir.state"] = item.u8()


DISSECTORS = [EnipDissector, EnipUdpDissector, CipIoDissector]
