"""The contract between the sensor and the protocol dissectors.

The sensor owns capture reading, flow tracking and TCP reassembly; a dissector
only turns the bytes of one direction of one conversation into messages. A
dissector never raises on traffic: whatever the wire holds, malformed frames
come back as messages carrying ``violations``, because an exception would let a
hostile packet blind the sensor.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

FieldValue = int | str | bytes | bool | float | tuple[int, ...] | tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Message:
    """One protocol data unit, as seen on the wire.

    ``fields`` uses tshark's field names (``modbus.func_code``) wherever tshark
    has one, so that tests compare our dissection with the reference directly.
    ``frame`` is the 1-based number of the capture frame that completed the PDU.
    """

    protocol: str
    frame: int
    ts: float
    is_request: bool | None
    fields: dict[str, FieldValue] = field(default_factory=dict)
    violations: tuple[str, ...] = ()


class StreamDissector(ABC):
    """A protocol carried over TCP; one instance serves one conversation.

    ``feed`` receives in-order bytes of one direction (the sensor reassembles
    and tells which side is the server); the dissector keeps per-direction
    buffers bounded by ``max_buffer`` and resynchronises on garbage, which is
    how sessions picked up mid-stream are handled.
    """

    name: ClassVar[str] = ""
    ports: ClassVar[frozenset[int]] = frozenset()
    max_buffer: ClassVar[int] = 65536

    @abstractmethod
    def feed(self, data: bytes, *, to_server: bool, frame: int, ts: float) -> list[Message]:
        """Consume bytes of one direction; return the PDUs they complete."""

    def gap(self, *, to_server: bool) -> None:  # noqa: B027 - optional hook
        """Bytes were lost in this direction (capture drop or mid-stream start)."""


class ResyncingStreamDissector(StreamDissector):
    """A stream dissector that buffers each direction and hunts for a header after a gap.

    ``_hunting[direction]`` is set when bytes were lost, so the first garbage
    skipped afterwards is expected (a session picked up mid-stream) rather
    than reported as a violation.
    """

    def __init__(self) -> None:
        self._buffers: dict[bool, bytearray] = {True: bytearray(), False: bytearray()}
        self._hunting: dict[bool, bool] = {True: False, False: False}

    def gap(self, *, to_server: bool) -> None:
        self._buffers[to_server].clear()
        self._hunting[to_server] = True


class DatagramDissector(ABC):
    """A protocol carried over UDP; stateless, one datagram at a time."""

    name: ClassVar[str] = ""
    ports: ClassVar[frozenset[int]] = frozenset()

    @abstractmethod
    def parse(self, data: bytes, *, to_server: bool, frame: int, ts: float) -> list[Message]:
        """Dissect one datagram."""
