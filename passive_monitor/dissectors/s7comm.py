"""Siemens S7comm over ISO-on-TCP: TPKT, COTP and the S7 PDU.

TPKT (RFC 1006) frames the stream; COTP (ISO 8073 class 0) opens the connection
and carries data units that a large S7 PDU spreads over with the end-of-transmission
bit; the S7 PDU inside starts with protocol id 0x32. Newer PLCs speak S7comm-plus
(protocol id 0x72) over the same stack, which is recognised but not decoded:
its integrity part makes the payload opaque to a passive observer anyway.

One message is returned per TPKT frame, mirroring how tshark reports them: the
S7 fields appear on the TPKT that completes the COTP unit (and, for userdata
answers split into data units, on the last unit).
"""

from __future__ import annotations

from typing import ClassVar

from passive_monitor.dissectors import s7comm_params, s7comm_szl
from passive_monitor.dissectors.base import FieldValue, Message, ResyncingStreamDissector
from passive_monitor.dissectors.cursor import Cursor, Truncated
from passive_monitor.dissectors.messages import new_message

Fields = dict[str, FieldValue]

TPKT_VERSION = 3
TPKT_HEADER = 4
MIN_TPKT = 7
COTP_DT = 0xF
COTP_CONNECTION = frozenset({0xE, 0xD, 0x8, 0xC})  # CR, CC, DR, DC
COTP_CR = 0xE
COTP_DR = 0x8
S7_PROTOCOL = 0x32
S7_PLUS_PROTOCOL = 0x72
S7_PLUS_DIGEST = 0x20
S7_PLUS_WITH_FUNCTION = frozenset({0x31, 0x32})
JOB, ACK, ACK_DATA, USERDATA = 1, 2, 3, 7
USERDATA_REQUEST = 4
MAX_PENDING_ANSWERS = 8


class S7commDissector(ResyncingStreamDissector):
    """One ISO-on-TCP connection to a Siemens PLC."""

    name: ClassVar[str] = "s7comm"
    ports: ClassVar[frozenset[int]] = frozenset({102})

    def __init__(self) -> None:
        super().__init__()
        self._cotp: dict[bool, bytearray] = {True: bytearray(), False: bytearray()}
        self._fragments: dict[tuple[bool, int], bytes] = {}

    def gap(self, *, to_server: bool) -> None:
        super().gap(to_server=to_server)
        self._cotp[to_server].clear()

    def feed(self, data: bytes, *, to_server: bool, frame: int, ts: float) -> list[Message]:
        buffer = self._buffers[to_server]
        buffer += data
        messages: list[Message] = []
        while len(buffer) >= TPKT_HEADER + 2:
            length = int.from_bytes(buffer[2:4], "big")
            if not _plausible_tpkt(buffer, length):
                skipped = self._resync(buffer)
                if not self._hunting[to_server]:
                    violation = f"{skipped} bytes outside any TPKT frame skipped"
                    messages.append(new_message("s7comm", frame, ts, None, {}, (violation,)))
                continue
            if len(buffer) < length:
                break
            tpkt = bytes(buffer[:length])
            del buffer[:length]
            self._hunting[to_server] = False
            messages.append(self._tpkt(tpkt, to_server, frame, ts))
        return messages

    @staticmethod
    def _resync(buffer: bytearray) -> int:
        """Drop bytes up to the next plausible TPKT header (03 00)."""
        position = buffer.find(b"\x03\x00", 1)
        skipped = len(buffer) - 1 if position < 0 else position
        del buffer[:skipped]
        return skipped

    def _tpkt(self, tpkt: bytes, to_server: bool, frame: int, ts: float) -> Message:
        fields: Fields = {"tpkt.version": tpkt[0], "tpkt.length": len(tpkt)}
        violations: list[str] = []
        is_request: bool | None = None
        try:
            is_request = self._cotp_unit(Cursor(tpkt, TPKT_HEADER), to_server, fields, violations)
        except Truncated as error:
            violations.append(f"truncated: {error}")
        return new_message("s7comm", frame, ts, is_request, fields, tuple(violations))

    def _cotp_unit(
        self, unit: Cursor, to_server: bool, fields: Fields, violations: list[str]
    ) -> bool | None:
        indicator = unit.u8()
        fields["cotp.li"] = indicator
        header = Cursor(unit.take(indicator))
        kind = header.u8() >> 4
        fields["cotp.type"] = kind
        if kind in COTP_CONNECTION:
            fields["cotp.destref"] = header.u16()
            fields["cotp.srcref"] = header.u16()
            return kind in (COTP_CR, COTP_DR)
        if kind != COTP_DT:
            violations.append(f"COTP TPDU type {kind:#x} not expected on an S7 connection")
            return None
        number = header.u8()
        fields["cotp.tpdu-number"] = number & 0x7F
        fields["cotp.eot"] = bool(number & 0x80)
        pending = self._cotp[to_server]
        pending += unit.take(unit.remaining)
        if len(pending) > self.max_buffer:
            pending.clear()
            violations.append("COTP data units exceed the reassembly limit")
            return None
        if not number & 0x80:
            return None
        payload = bytes(pending)
        pending.clear()
        return self._s7(payload, to_server, fields, violations)

    def _s7(
        self, payload: bytes, to_server: bool, fields: Fields, violations: list[str]
    ) -> bool | None:
        pdu = Cursor(payload)
        protocol = pdu.u8()
        if protocol == S7_PLUS_PROTOCOL:
            _s7_plus(pdu, fields)
            return None
        fields["s7comm.header.protid"] = protocol
        if protocol != S7_PROTOCOL:
            violations.append(f"unknown protocol id {protocol:#04x} in COTP data")
            return None
        rosctr = pdu.u8()
        fields["s7comm.header.rosctr"] = rosctr
        pdu.u16()
        fields["s7comm.header.pduref"] = pdu.u16()
        param_length = pdu.u16()
        data_length = pdu.u16()
        fields["s7comm.header.parlg"] = param_length
        fields["s7comm.header.datlg"] = data_length
        if rosctr in (ACK, ACK_DATA):
            fields["s7comm.header.errcls"] = pdu.u8()
            fields["s7comm.header.errcod"] = pdu.u8()
        if param_length + data_length != pdu.remaining:
            violations.append(
                f"S7 header announces {param_length + data_length} bytes, {pdu.remaining} follow"
            )
        param = Cursor(pdu.take(min(param_length, pdu.remaining)))
        data = Cursor(pdu.take(min(data_length, pdu.remaining)))
        if rosctr == USERDATA:
            return self._userdata(param, data, to_server, fields)
        if rosctr not in (JOB, ACK, ACK_DATA):
            violations.append(f"unknown ROSCTR {rosctr}")
            return None
        if param.remaining:
            function = param.u8()
            fields["s7comm.param.func"] = function
            if rosctr == JOB:
                s7comm_params.job(function, param, data, fields)
            elif rosctr == ACK_DATA:
                s7comm_params.ack(function, param, data, fields)
        return rosctr == JOB

    def _userdata(self, param: Cursor, data: Cursor, to_server: bool, fields: Fields) -> bool:
        kind, group, subfunction, unit, last = s7comm_szl.userdata_header(param, fields)
        payload = s7comm_szl.userdata_payload(data, fields) if data.remaining else None
        is_request = kind == USERDATA_REQUEST
        if payload is None or (group, subfunction) != (
            s7comm_szl.CPU_FUNCTIONS,
            s7comm_szl.READ_SZL,
        ):
            return is_request
        if is_request:
            s7comm_szl.szl_request(payload, fields)
            return is_request
        key = (to_server, unit)
        payload = self._fragments.pop(key, b"") + payload
        if not last:
            if len(self._fragments) >= MAX_PENDING_ANSWERS:
                self._fragments.clear()
            if len(payload) <= self.max_buffer:
                self._fragments[key] = payload
            return is_request
        s7comm_szl.szl_response(payload, fields)
        return is_request


def _plausible_tpkt(buffer: bytearray, length: int) -> bool:
    """TPKT version 3 holding a COTP header of a known type that fits the frame."""
    indicator, kind = buffer[4], buffer[5] >> 4
    return (
        buffer[0] == TPKT_VERSION
        and buffer[1] == 0
        and length >= MIN_TPKT
        and 2 <= indicator <= length - TPKT_HEADER - 1
        and (kind == COTP_DT or kind in COTP_CONNECTION)
    )


def _s7_plus(pdu: Cursor, fields: Fields) -> None:
    """Header and opcode only; V3 frames put a 32-byte digest before the opcode."""
    fields["s7comm_plus.header.protid"] = S7_PLUS_PROTOCOL
    version = pdu.u8()
    fields["s7comm_plus.header.version"] = version
    fields["s7comm_plus.header.datlg"] = pdu.u16()
    if not pdu.remaining:
        return
    if pdu.data[pdu.offset] == S7_PLUS_DIGEST and pdu.remaining > S7_PLUS_DIGEST + 1:
        pdu.take(S7_PLUS_DIGEST + 1)
    opcode = pdu.u8()
    fields["s7comm_plus.data.opcode"] = opcode
    if opcode in S7_PLUS_WITH_FUNCTION:
        pdu.u16()
        fields["s7comm_plus.data.function"] = pdu.u16()


DISSECTORS = [S7commDissector]
