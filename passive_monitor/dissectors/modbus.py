"""Modbus/TCP: the MBAP header and the Modbus PDU it carries.

Field names follow tshark's (``mbtcp.*`` for the MBAP header, ``modbus.*`` for
the PDU) so each message can be checked against the reference dissector.
Requests and responses share function codes but not layouts; the direction
the sensor reports decides which layout applies, as it does for tshark. Where
a PDU ends early the fields read so far are kept and the shortfall becomes a
violation, because a half-decoded write is still worth an alert.

Function 90 carries Schneider Electric's UMAS; only its envelope is decoded
(session byte, then the UMAS function code in requests or the status, 0xFE
success / 0xFD error, in responses), enough to spot programming and start/stop
activity against Modicon controllers. tshark 4.0 has no UMAS dissector, so
these fields use a ``umas.`` prefix of their own.
"""

from __future__ import annotations

from struct import unpack_from
from typing import ClassVar

from passive_monitor.dissectors.base import FieldValue, Message, StreamDissector

MBAP_LEN = 7
# Unit identifier plus the largest PDU (253 bytes); a longer ADU is not Modbus
# and waiting for it would let one connection pin 64 KiB of buffer.
MAX_MBAP_LENGTH = 254
MODBUS_PORT = 502
UMAS_FUNCTION = 90
MEI_READ_DEVICE_ID = 14
EXCEPTION_BIT = 0x80


class _Short(Exception):
    """The PDU ended before a field it announces."""


class _Fields:
    """Collects fields while reading a PDU; running past the end raises ``_Short``."""

    __slots__ = ("data", "fields", "size")

    def __init__(self, data: bytes, fields: dict[str, FieldValue]) -> None:
        self.data = data
        self.size = len(data)
        self.fields = fields

    def u8(self, name: str, at: int) -> int:
        if at + 1 > self.size:
            raise _Short(name)
        value = self.data[at]
        self.fields[name] = value
        return value

    def u16(self, name: str, at: int) -> int:
        if at + 2 > self.size:
            raise _Short(name)
        value: int = unpack_from("!H", self.data, at)[0]
        self.fields[name] = value
        return value

    def append(self, name: str, value: int | str) -> None:
        """Add one occurrence of a repeated field (device-id objects)."""
        old = self.fields.get(name)
        if isinstance(value, int):
            ints = old if isinstance(old, tuple) else ()
            self.fields[name] = (*ints, value)
        else:
            strs = old if isinstance(old, tuple) else ()
            self.fields[name] = (*strs, value)


def _request(r: _Fields, fc: int) -> None:
    """Layouts of the request PDUs (offsets count from after the function code)."""
    if fc in (1, 2, 15):
        r.u16("modbus.reference_num", 1)
        r.u16("modbus.bit_cnt", 3)
        if fc == 15:
            r.u8("modbus.byte_cnt", 5)
    elif fc in (3, 4, 16):
        r.u16("modbus.reference_num", 1)
        r.u16("modbus.word_cnt", 3)
        if fc == 16:
            r.u8("modbus.byte_cnt", 5)
    elif fc in (5, 6, 24):
        r.u16("modbus.reference_num", 1)
    elif fc == 8:
        r.u16("modbus.diagnostic_code", 1)
    elif fc in (20, 21):
        r.u8("modbus.byte_cnt", 1)
    elif fc == 22:
        _mask_write(r)
    elif fc == 23:
        r.u16("modbus.read_reference_num", 1)
        r.u16("modbus.read_word_cnt", 3)
        r.u16("modbus.write_reference_num", 5)
        r.u16("modbus.write_word_cnt", 7)
        r.u8("modbus.byte_cnt", 9)
    elif fc == 43:
        if r.u8("modbus.mei", 1) == MEI_READ_DEVICE_ID:
            r.u8("modbus.read_device_id", 2)
            r.u8("modbus.object_id", 3)
    elif fc == UMAS_FUNCTION:
        r.u8("umas.session_key", 1)
        r.u8("umas.func_code", 2)


def _response(r: _Fields, fc: int) -> None:
    """Layouts of the normal (non-exception) response PDUs."""
    if fc in (1, 2, 3, 4, 12, 20, 21, 23):
        r.u8("modbus.byte_cnt", 1)
        if fc == 12:
            r.u16("modbus.ev_status", 2)
            r.u16("modbus.ev_count", 4)
            r.u16("modbus.ev_msg_count", 6)
    elif fc in (5, 6):
        r.u16("modbus.reference_num", 1)
    elif fc == 8:
        r.u16("modbus.diagnostic_code", 1)
    elif fc == 11:
        r.u16("modbus.ev_status", 1)
        r.u16("modbus.ev_count", 3)
    elif fc == 15:
        r.u16("modbus.reference_num", 1)
        r.u16("modbus.bit_cnt", 3)
    elif fc == 16:
        r.u16("modbus.reference_num", 1)
        r.u16("modbus.word_cnt", 3)
    elif fc == 22:
        _mask_write(r)
    elif fc == 24:
        r.u16("modbus.byte_cnt_16", 1)
        r.u16("modbus.word_cnt", 3)
    elif fc == 43:
        if r.u8("modbus.mei", 1) == MEI_READ_DEVICE_ID:
            _device_identification(r)
    elif fc == UMAS_FUNCTION:
        r.u8("umas.session_key", 1)
        r.u8("umas.status", 2)


def _mask_write(r: _Fields) -> None:
    r.u16("modbus.reference_num", 1)
    r.u16("modbus.and_mask", 3)
    r.u16("modbus.or_mask", 5)


def _device_identification(r: _Fields) -> None:
    """43/14 objects: vendor name, product code, revision and the rest."""
    r.u8("modbus.read_device_id", 2)
    r.u8("modbus.conformity_level", 3)
    r.u8("modbus.more_follows", 4)
    r.u8("modbus.next_object_id", 5)
    count = r.u8("modbus.num_objects", 6)
    at = 7
    data = r.data
    for _ in range(count):
        if at + 2 > r.size:
            raise _Short("modbus.object_id")
        object_id = data[at]
        length = data[at + 1]
        if at + 2 + length > r.size:
            raise _Short("modbus.object_str_value")
        r.append("modbus.object_id", object_id)
        r.append("modbus.objects_len", length)
        value = data[at + 2 : at + 2 + length]
        r.append("modbus.object_str_value", value.decode("latin-1"))
        at += 2 + length


def _plausible_start(head: bytes) -> bool:
    """Could these few bytes begin an MBAP header split over segments?"""
    prot = head[2:4]
    if prot.strip(b"\0"):
        return False
    return len(head) < 6 or unpack_from("!H", head, 4)[0] >= 2


class ModbusTcp(StreamDissector):
    """Modbus/TCP, one instance per connection.

    Whenever new bytes arrive, the pending data must start like an MBAP header
    (protocol identifier 0, length at least 2, room for a function code) or it
    is not Modbus and is dropped whole; that is both how a conversation joined
    mid-PDU resynchronises and how tshark decides. Unlike tshark, a few bytes
    that could still become a header are kept rather than dropped, so a
    header split across segments cannot hide a request.
    """

    name: ClassVar[str] = "modbus"
    ports: ClassVar[frozenset[int]] = frozenset({MODBUS_PORT})

    def __init__(self) -> None:
        # Pending bytes per direction, indexed by ``to_server`` (a list is a
        # third the size of a dict, and there is one per connection).
        self._buffers: list[bytes] = [b"", b""]

    def gap(self, *, to_server: bool) -> None:
        self._buffers[to_server] = b""

    def feed(self, data: bytes, *, to_server: bool, frame: int, ts: float) -> list[Message]:
        buf = self._buffers[to_server] + data if self._buffers[to_server] else data
        messages: list[Message] = []
        if len(buf) < MBAP_LEN + 1:
            if _plausible_start(buf):
                self._buffers[to_server] = buf
                return []
            return [self._garbage(buf, to_server, frame, ts, "data shorter than MBAP")]
        prot_id, length = unpack_from("!HH", buf, 2)
        if prot_id != 0 or length < 2:
            reason = f"not MBAP (protocol id {prot_id}, length {length})"
            return [self._garbage(buf, to_server, frame, ts, reason)]
        offset = 0
        size = len(buf)
        while size - offset >= 6:
            (length,) = unpack_from("!H", buf, offset + 4)
            end = offset + 6 + length
            if length > MAX_MBAP_LENGTH:
                reason = f"MBAP length {length} beyond the {MAX_MBAP_LENGTH} the standard allows"
                messages.append(self._garbage(buf[offset:], to_server, frame, ts, reason))
                return messages
            if end > size:
                break
            messages.append(self._adu(buf[offset:end], to_server, frame, ts))
            offset = end
        self._buffers[to_server] = buf[offset:]
        return messages

    def _garbage(self, data: bytes, to_server: bool, frame: int, ts: float, why: str) -> Message:
        self._buffers[to_server] = b""
        return Message("modbus", frame, ts, to_server, {}, (f"{why}: {len(data)} bytes dropped",))

    def _adu(self, adu: bytes, to_server: bool, frame: int, ts: float) -> Message:
        """One MBAP header and its PDU."""
        trans_id, prot_id, length = unpack_from("!HHH", adu, 0)
        fields: dict[str, FieldValue] = {
            "mbtcp.trans_id": trans_id,
            "mbtcp.prot_id": prot_id,
            "mbtcp.len": length,
        }
        violations: list[str] = []
        if prot_id != 0:
            violations.append(f"protocol identifier {prot_id} is not 0")
        if length < 2:
            violations.append(f"MBAP length {length} leaves no function code")
        if len(adu) > MBAP_LEN - 1:
            fields["mbtcp.unit_id"] = adu[6]
        pdu = adu[MBAP_LEN:]
        if pdu:
            raw_fc = pdu[0]
            fc = raw_fc & 0x7F
            fields["modbus.func_code"] = fc
            reader = _Fields(pdu, fields)
            try:
                if raw_fc & EXCEPTION_BIT:
                    reader.u8("modbus.exception_code", 1)
                elif to_server:
                    _request(reader, fc)
                else:
                    _response(reader, fc)
            except _Short as short:
                violations.append(f"function {raw_fc}: PDU ends before {short}")
        return Message("modbus", frame, ts, to_server, fields, tuple(violations))


DISSECTORS = [ModbusTcp]
