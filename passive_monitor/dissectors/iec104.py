"""IEC 60870-5-104: the APCI framing and the ASDU header of telecontrol traffic.

A 104 stream is a sequence of APDUs, each a start byte 0x68, a length byte and
that many bytes of control field plus optional ASDU. Several APDUs share one TCP
segment and one APDU may span segments, so the dissector works on a per-direction
buffer and emits one message per complete APDU. The start byte is the only
synchronisation point the protocol offers; after a gap the dissector hunts for it.
"""

from __future__ import annotations

from typing import ClassVar

from passive_monitor.dissectors.base import FieldValue, Message, ResyncingStreamDissector
from passive_monitor.dissectors.iec104_types import ELEMENT_SIZES, VARIABLE_SIZE_TYPES
from passive_monitor.dissectors.messages import new_message

START = 0x68
MIN_APCI = 4
ASDU_HEADER = 6
IOA_SIZE = 3

I_FRAME = 0
S_FRAME = 1
U_FRAME = 3
U_FUNCTIONS = frozenset({0x01, 0x02, 0x04, 0x08, 0x10, 0x20})


def _asdu(asdu: bytes, fields: dict[str, FieldValue], violations: list[str]) -> None:
    """Header fields plus every information object address the type allows us to locate."""
    if len(asdu) < 1:
        violations.append("I-format APDU without ASDU")
        return
    type_id = asdu[0]
    fields["iec60870_asdu.typeid"] = type_id
    if len(asdu) < 2:
        violations.append("ASDU truncated in variable structure qualifier")
        return
    sequence = bool(asdu[1] & 0x80)
    count = asdu[1] & 0x7F
    fields["iec60870_asdu.sq"] = sequence
    fields["iec60870_asdu.numix"] = count
    if len(asdu) >= 3:
        fields["iec60870_asdu.causetx"] = asdu[2] & 0x3F
        fields["iec60870_asdu.nega"] = bool(asdu[2] & 0x40)
        fields["iec60870_asdu.test"] = bool(asdu[2] & 0x80)
    if len(asdu) >= 4:
        fields["iec60870_asdu.oa"] = asdu[3]
    if len(asdu) < ASDU_HEADER:
        violations.append("ASDU header truncated")
        return
    fields["iec60870_asdu.addr"] = int.from_bytes(asdu[4:6], "little")
    body = asdu[ASDU_HEADER:]
    if count == 0 or type_id in VARIABLE_SIZE_TYPES:
        return
    size = ELEMENT_SIZES.get(type_id)
    if size is None:
        violations.append(f"unknown ASDU type id {type_id}")
        return
    if sequence:
        needed = IOA_SIZE + count * size
        if len(body) >= IOA_SIZE:
            first = int.from_bytes(body[:IOA_SIZE], "little")
            fields["iec60870_asdu.ioa"] = tuple(first + i for i in range(count))
    else:
        needed = count * (IOA_SIZE + size)
        step = IOA_SIZE + size
        fields["iec60870_asdu.ioa"] = tuple(
            int.from_bytes(body[i : i + IOA_SIZE], "little")
            for i in range(0, min(needed, len(body)), step)
            if i + IOA_SIZE <= len(body)
        )
    if len(body) != needed:
        violations.append(f"ASDU objects take {len(body)} bytes, type and count need {needed}")


def parse_apdu(apdu: bytes) -> tuple[dict[str, FieldValue], list[str]]:
    """Fields of one APDU (start byte included); never raises."""
    length = apdu[1]
    fields: dict[str, FieldValue] = {"iec60870_104.apdulen": length}
    violations: list[str] = []
    if length < MIN_APCI:
        violations.append("APDU shorter than its 4-byte control field")
        return fields, violations
    control = apdu[2:6]
    if control[0] & 0x01 == 0:
        fields["iec60870_104.type"] = I_FRAME
        fields["iec60870_104.tx"] = int.from_bytes(control[0:2], "little") >> 1
        fields["iec60870_104.rx"] = int.from_bytes(control[2:4], "little") >> 1
        _asdu(apdu[6:], fields, violations)
        return fields, violations
    if control[0] & 0x03 == S_FRAME:
        fields["iec60870_104.type"] = S_FRAME
        fields["iec60870_104.rx"] = int.from_bytes(control[2:4], "little") >> 1
    else:
        fields["iec60870_104.type"] = U_FRAME
        function = control[0] >> 2
        fields["iec60870_104.utype"] = function
        if function not in U_FUNCTIONS:
            violations.append(f"U-format function bits {function:#04x} name no single function")
    if length > MIN_APCI:
        violations.append("S/U-format APDU carries data after its control field")
    return fields, violations


class Iec104Dissector(ResyncingStreamDissector):
    """One IEC 104 connection; the controlling station is the client."""

    name: ClassVar[str] = "iec104"
    ports: ClassVar[frozenset[int]] = frozenset({2404})

    def feed(self, data: bytes, *, to_server: bool, frame: int, ts: float) -> list[Message]:
        buffer = self._buffers[to_server]
        buffer += data
        messages: list[Message] = []
        while buffer:
            if buffer[0] != START:
                skipped = buffer.find(START)
                skipped = len(buffer) if skipped < 0 else skipped
                del buffer[:skipped]
                if not self._hunting[to_server]:
                    messages.append(self._garbage(skipped, to_server, frame, ts))
                continue
            if len(buffer) < 2 or len(buffer) < buffer[1] + 2:
                break
            apdu = bytes(buffer[: buffer[1] + 2])
            del buffer[: len(apdu)]
            self._hunting[to_server] = False
            fields, violations = parse_apdu(apdu)
            messages.append(new_message("iec104", frame, ts, to_server, fields, tuple(violations)))
        return messages

    @staticmethod
    def _garbage(skipped: int, to_server: bool, frame: int, ts: float) -> Message:
        violation = f"{skipped} bytes without the 0x68 start byte skipped"
        return new_message("iec104", frame, ts, to_server, {}, (violation,))


DISSECTORS = [Iec104Dissector]
