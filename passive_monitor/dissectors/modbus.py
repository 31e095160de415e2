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

from struct import Struct, calcsize, unpack_from
from typing import ClassVar

from passive_monitor.dissectors.base import FieldValue, Message, StreamDissector
from passive_monitor.dissectors.messages import new_message

MBAP_LEN = 7
# Unit identifier plus the largest PDU (253 bytes); a longer ADU is not Modbus
# and waiting for it would let one connection pin 64 KiB of buffer.
MAX_MBAP_LENGTH = 254
MODBUS_PORT = 502
UMAS_FUNCTION = 90
MEI_READ_DEVICE_ID = 14
MEI_FUNCTION = 43
EXCEPTION_BIT = 0x80
_U16 = Struct("!H")
_PROT_LEN = Struct("!HH")
_MBAP = Struct("!HHH")
# The MBAP header, unit identifier and function code of a PDU that has one.
_MBAP_FC = Struct("!HHHBB")


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

    def append(self, name: str, value: int | str) -> None:
        """Add one occurrence of a repeated field (device-id objects)."""
        old = self.fields.get(name)
        if isinstance(value, int):
            ints = old if isinstance(old, tuple) else ()
            self.fields[name] = (*ints, value)
        else:
            strs = old if isinstance(old, tuple) else ()
            self.fields[name] = (*strs, value)


class _Layout:
    """The fixed fields that follow one function code, as ``(name, struct code)`` pairs.

    Most PDUs have such a layout; when the PDU holds all of it, one precompiled
    unpack fills every field at once. A short PDU is read field by field so the
    fields before the shortfall are kept and the first missing one is named.
    """

    __slots__ = ("ends", "names", "size", "struct")

    def __init__(self, *layout: tuple[str, str]) -> None:
        self.names = tuple(name for name, _ in layout)
        self.struct = Struct("!" + "".join(code for _, code in layout))
        self.size = self.struct.size
        ends: list[int] = []
        end = 0
        for _, code in layout:
            end += calcsize("!" + code)
            ends.append(end)
        self.ends = tuple(ends)

    def read(self, data: bytes, start: int, fields: dict[str, FieldValue]) -> None:
        """Store the fields found at *start*; raise ``_Short`` at the first missing one."""
        room = len(data) - start
        if room >= self.size:
            fields.update(zip(self.names, self.struct.unpack_from(data, start), strict=False))
            return
        at = 0
        for name, end in zip(self.names, self.ends, strict=True):
            if end > room:
                raise _Short(name)
            fields[name] = int.from_bytes(data[start + at : start + end], "big")
            at = end


def _layouts(table: dict[tuple[int, ...], tuple[tuple[str, str], ...]]) -> dict[int, _Layout]:
    return {fc: _Layout(*layout) for codes, layout in table.items() for fc in codes}


_REF = ("modbus.reference_num", "H")
_BIT_CNT = ("modbus.bit_cnt", "H")
_WORD_CNT = ("modbus.word_cnt", "H")
_BYTE_CNT = ("modbus.byte_cnt", "B")
_DIAGNOSTIC = ("modbus.diagnostic_code", "H")
_MASK_WRITE = (_REF, ("modbus.and_mask", "H"), ("modbus.or_mask", "H"))
_EV_STATUS = ("modbus.ev_status", "H")
_EV_COUNT = ("modbus.ev_count", "H")
_UMAS_SESSION = ("umas.session_key", "B")

# Layouts after the function code; function 43 (encapsulated interfaces) is
# variable and read by ``_mei_request`` and ``_mei_response`` instead.
_REQUESTS = _layouts(
    {
        (1, 2): (_REF, _BIT_CNT),
        (15,): (_REF, _BIT_CNT, _BYTE_CNT),
        (3, 4): (_REF, _WORD_CNT),
        (16,): (_REF, _WORD_CNT, _BYTE_CNT),
        (5, 6, 24): (_REF,),
        (8,): (_DIAGNOSTIC,),
        (20, 21): (_BYTE_CNT,),
        (22,): _MASK_WRITE,
        (23,): (
            ("modbus.read_reference_num", "H"),
            ("modbus.read_word_cnt", "H"),
            ("modbus.write_reference_num", "H"),
            ("modbus.write_word_cnt", "H"),
            _BYTE_CNT,
        ),
        (UMAS_FUNCTION,): (_UMAS_SESSION, ("umas.func_code", "B")),
    }
)
_RESPONSES = _layouts(
    {
        (1, 2, 3, 4, 20, 21, 23): (_BYTE_CNT,),
        (12,): (_BYTE_CNT, _EV_STATUS, _EV_COUNT, ("modbus.ev_msg_count", "H")),
        (5, 6): (_REF,),
        (8,): (_DIAGNOSTIC,),
        (11,): (_EV_STATUS, _EV_COUNT),
        (15,): (_REF, _BIT_CNT),
        (16,): (_REF, _WORD_CNT),
        (22,): _MASK_WRITE,
        (24,): (("modbus.byte_cnt_16", "H"), _WORD_CNT),
        (UMAS_FUNCTION,): (_UMAS_SESSION, ("umas.status", "B")),
    }
)
_EXCEPTION = _Layout(("modbus.exception_code", "B"))


def _mei_request(r: _Fields) -> None:
    if r.u8("modbus.mei", 1) == MEI_READ_DEVICE_ID:
        r.u8("modbus.read_device_id", 2)
        r.u8("modbus.object_id", 3)


def _mei_response(r: _Fields) -> None:
    if r.u8("modbus.mei", 1) == MEI_READ_DEVICE_ID:
        _device_identification(r)


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
        if len(buf) < MBAP_LEN + 1:
            if _plausible_start(buf):
                self._buffers[to_server] = buf
                return []
            return [self._garbage(buf, to_server, frame, ts, "data shorter than MBAP")]
        prot_id, length = _PROT_LEN.unpack_from(buf, 2)
        if prot_id != 0 or length < 2:
            reason = f"not MBAP (protocol id {prot_id}, length {length})"
            return [self._garbage(buf, to_server, frame, ts, reason)]
        size = len(buf)
        if size == 6 + length and length <= MAX_MBAP_LENGTH:
            # The usual segment: exactly one whole ADU, so nothing is left pending.
            self._buffers[to_server] = b""
            return [self._adu(buf, to_server, frame, ts)]
        messages: list[Message] = []
        offset = 0
        while size - offset >= 6:
            (length,) = _U16.unpack_from(buf, offset + 4)
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
        reason = f"{why}: {len(data)} bytes dropped"
        return new_message("modbus", frame, ts, to_server, {}, (reason,))

    def _adu(self, adu: bytes, to_server: bool, frame: int, ts: float) -> Message:
        """One MBAP header and its PDU (which starts at offset 7, the function code)."""
        if len(adu) <= MBAP_LEN:
            return _without_pdu(adu, to_server, frame, ts)
        trans_id, prot_id, length, unit_id, raw_fc = _MBAP_FC.unpack_from(adu, 0)
        fc = raw_fc & 0x7F
        fields: dict[str, FieldValue] = {
            "mbtcp.trans_id": trans_id,
            "mbtcp.prot_id": prot_id,
            "mbtcp.len": length,
            "mbtcp.unit_id": unit_id,
            "modbus.func_code": fc,
        }
        # A header worth a violation is rare; the check is spelled out to skip a call.
        violations = [] if prot_id == 0 and length >= 2 else _header_violations(prot_id, length)
        try:
            if raw_fc & EXCEPTION_BIT:
                _EXCEPTION.read(adu, MBAP_LEN + 1, fields)
            elif fc == MEI_FUNCTION:
                reader = _Fields(adu[MBAP_LEN:], fields)
                (_mei_request if to_server else _mei_response)(reader)
            else:
                layout = (_REQUESTS if to_server else _RESPONSES).get(fc)
                if layout is not None:
                    layout.read(adu, MBAP_LEN + 1, fields)
        except _Short as short:
            violations.append(f"function {raw_fc}: PDU ends before {short}")
        return new_message("modbus", frame, ts, to_server, fields, tuple(violations))


def _header_violations(prot_id: int, length: int) -> list[str]:
    violations: list[str] = []
    if prot_id != 0:
        violations.append(f"protocol identifier {prot_id} is not 0")
    if length < 2:
        violations.append(f"MBAP length {length} leaves no function code")
    return violations


def _without_pdu(adu: bytes, to_server: bool, frame: int, ts: float) -> Message:
    """An MBAP header (perhaps with a unit identifier) and no function code."""
    trans_id, prot_id, length = _MBAP.unpack_from(adu, 0)
    fields: dict[str, FieldValue] = {
        "mbtcp.trans_id": trans_id,
        "mbtcp.prot_id": prot_id,
        "mbtcp.len": length,
    }
    if len(adu) > MBAP_LEN - 1:
        fields["mbtcp.unit_id"] = adu[6]
    violations = tuple(_header_violations(prot_id, length))
    return new_message("modbus", frame, ts, to_server, fields, violations)


DISSECTORS = [ModbusTcp]
