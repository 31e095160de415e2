"""The passive sensor: frames in, observations out.

Everything downstream (inventory, baseline, alerts, export) consumes the same
stream of :class:`Observation` whether the frames came from a file, an
iterable or a live interface, so they can be tested on captures and deployed
on a SPAN port unchanged. The sensor only ever reads; it never answers or
injects, which is what makes it safe next to fragile legacy controllers.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from passive_monitor.capture import read_capture
from passive_monitor.capture.live import read_interface
from passive_monitor.decode import PROTO_TCP, TCP_ACK, TCP_SYN, PacketFields, Skipped, decode_fields
from passive_monitor.dissectors import all_dissectors
from passive_monitor.dissectors.base import DatagramDissector, Message, StreamDissector
from passive_monitor.flows import Endpoint, Flow, FlowKey, FlowTable, TcpStream
from passive_monitor.reassembly import HoldBudget

__all__ = ["Endpoint", "Observation", "Sensor", "SensorStats"]

EXPIRE_EVERY = 4096
SEQ_MASK = 0xFFFFFFFF
UNKNOWN = Endpoint(None, "", 0)

DissectorClass = type[StreamDissector] | type[DatagramDissector]


@dataclass(frozen=True, slots=True)
class Observation:
    """One thing the sensor saw.

    ``kind`` is ``"connection"`` for the first packet of a new flow (a SYN or a
    conversation picked up mid-stream), ``"pdu"`` for a dissected message, and
    ``"violation"`` for a packet that failed to decode below the application
    layer (``message`` is None and ``reason`` says why; ``transport`` and the
    endpoints are empty, as the packet did not reveal them) or that crashed a
    dissector. Malformed application data is not a violation observation: it
    arrives as a ``"pdu"`` whose message carries ``violations``.
    """

    kind: str
    frame: int
    ts: float
    transport: str
    client: Endpoint
    server: Endpoint
    message: Message | None
    reason: str = ""


@dataclass(slots=True)
class SensorStats:
    """Counters an operator needs to trust (or distrust) what the sensor reports."""

    packets: int = 0
    bytes: int = 0
    flows_active: int = 0
    flows_evicted: int = 0
    decode_errors: int = 0
    fragments: int = 0
    dissector_errors: int = 0


_new = object.__new__
_slots: dict[str, Any] = {name: Observation.__dict__[name] for name in Observation.__slots__}
_set_kind = _slots["kind"].__set__
_set_frame = _slots["frame"].__set__
_set_ts = _slots["ts"].__set__
_set_transport = _slots["transport"].__set__
_set_client = _slots["client"].__set__
_set_server = _slots["server"].__set__
_set_message = _slots["message"].__set__
_set_reason = _slots["reason"].__set__


def _observation(
    kind: str,
    frame: int,
    ts: float,
    transport: str,
    client: Endpoint,
    server: Endpoint,
    message: Message | None,
    reason: str = "",
) -> Observation:
    """``Observation(...)`` without the frozen dataclass's ``object.__setattr__`` per field.

    The sensor makes one observation per PDU, and the generated ``__init__``
    of a frozen dataclass costs more than decoding the packet did; filling the
    slots through their descriptors gives the same immutable, equal object.
    """
    observation: Observation = _new(Observation)
    _set_kind(observation, kind)
    _set_frame(observation, frame)
    _set_ts(observation, ts)
    _set_transport(observation, transport)
    _set_client(observation, client)
    _set_server(observation, server)
    _set_message(observation, message)
    _set_reason(observation, reason)
    return observation


def _ip_text(raw: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, raw)


def _mac_text(raw: bytes | None) -> str | None:
    return raw.hex(":") if raw is not None else None


class Sensor:
    """Turns captured frames into observations, keeping per-flow state bounded.

    ``reorder_bytes`` is how much early TCP data each direction may hold while
    waiting for a missing segment; 0 hands data past a hole straight to the
    dissector, which is also what tshark does by default. ``hold_limit`` caps
    the early data held across all flows together, so memory stays bounded
    even when every flow is hostile.
    """

    def __init__(
        self,
        *,
        max_flows: int = 100_000,
        dissectors: Sequence[DissectorClass] | None = None,
        idle_timeout: float = 3600.0,
        reorder_bytes: int = 65536,
        hold_limit: int = 64 << 20,
    ) -> None:
        self._table = FlowTable(max_flows, idle_timeout)
        self._reorder_bytes = reorder_bytes
        self._hold_budget = HoldBudget(hold_limit)
        self._stats = SensorStats()
        self._tcp: dict[int, type[StreamDissector]] = {}
        self._udp: dict[int, type[DatagramDissector]] = {}
        for cls in all_dissectors() if dissectors is None else dissectors:
            if issubclass(cls, StreamDissector):
                for port in cls.ports:
                    self._tcp.setdefault(port, cls)
            elif issubclass(cls, DatagramDissector):
                for port in cls.ports:
                    self._udp.setdefault(port, cls)
        self._frame = 0

    @property
    def stats(self) -> SensorStats:
        """Counters so far; packet and flow figures are refreshed on each read."""
        self._stats.packets = self._frame
        self._stats.flows_active = len(self._table)
        self._stats.flows_evicted = self._table.evicted
        return self._stats

    def observe_file(self, path: str | Path) -> Iterator[Observation]:
        """Observations from a pcap or pcapng file (frames numbered from 1)."""
        return self.observe_packets(read_capture(path))

    def observe_interface(
        self, name: str, *, stop: threading.Event | None = None
    ) -> Iterator[Observation]:
        """Observations from a live interface until *stop* is set (Linux, root)."""
        return self.observe_packets(read_interface(name, stop=stop))

    def observe_packets(self, packets: Iterable[tuple[float, int, bytes]]) -> Iterator[Observation]:
        """Observations from ``(ts, linktype, frame)`` tuples, in capture order.

        Frame numbers continue across calls on the same sensor, because the
        flow table does too.

        This loop runs for every packet, so the common case is written out in
        it rather than spread over helpers: the decoded packet stays a tuple
        unpacked into locals, the flow table's dictionary is used directly, and
        a TCP segment that continues its direction exactly, with nothing held
        out of order, goes to the dissector without passing through the
        reassembler. Everything else takes the general path.
        """
        stats = self._stats
        table = self._table
        flows = table.flows
        touch = flows.move_to_end
        for ts, linktype, data in packets:
            self._frame = frame = self._frame + 1
            stats.bytes += len(data)
            if frame % EXPIRE_EVERY == 0:
                table.expire(ts)
            pkt = decode_fields(linktype, data)
            if type(pkt) is not tuple:
                if isinstance(pkt, str):
                    stats.decode_errors += 1
                    yield _observation("violation", frame, ts, "", UNKNOWN, UNKNOWN, None, pkt)
                elif pkt is Skipped.FRAGMENT:
                    stats.fragments += 1
                continue
            _, _, src_ip, dst_ip, proto, sport, dport, flags, seq, ack, payload = pkt
            # flows.flow_key, written out: both directions share the key, lower side first.
            if src_ip < dst_ip or (src_ip == dst_ip and sport <= dport):
                key: FlowKey = (proto, src_ip, sport, dst_ip, dport)
            else:
                key = (proto, dst_ip, dport, src_ip, sport)
            flow = flows.get(key)
            tcp = proto == PROTO_TCP
            if flow is not None:
                flow.last_seen = ts
                touch(key)
                if tcp and flags & (TCP_SYN | TCP_ACK) == TCP_SYN:
                    from_client = sport == flow.client_port and src_ip == flow.client_ip
                    if not from_client or flow.client_isn not in (None, seq):
                        # A new connection on a reused port pair, or the side taken
                        # for the server mid-stream turns out to be the client.
                        table.remove(key)
                        flow = None
            if flow is None:
                flow = self._new_flow(key, pkt, ts)
                yield _observation(
                    "connection", frame, ts, "tcp" if tcp else "udp", flow.client, flow.server, None
                )
            from_client = sport == flow.client_port and src_ip == flow.client_ip
            if tcp:
                stream = flow.stream
                if flags & TCP_SYN:
                    if from_client and not flags & TCP_ACK:
                        flow.client_isn = seq
                    if stream is not None:
                        (stream.to_server if from_client else stream.to_client).syn(seq)
                    seq = (seq + 1) & SEQ_MASK
                if stream is None:
                    continue
                if flags & TCP_ACK and (stream.to_client if from_client else stream.to_server).held:
                    found = self._tcp_stream(
                        flow, stream, payload, seq, ack, flags, from_client, frame, ts
                    )
                elif payload:
                    own = stream.to_server if from_client else stream.to_client
                    if seq == own.next_seq and not own.held:
                        own.next_seq = (seq + len(payload)) & SEQ_MASK
                        found = self._deliver_stream(flow, payload, False, from_client, frame, ts)
                    else:
                        found = self._tcp_stream(
                            flow, stream, payload, seq, ack, flags, from_client, frame, ts
                        )
                else:
                    continue
            elif flow.datagram is not None and payload:
                found = self._deliver_datagram(flow, payload, from_client, frame, ts)
            else:
                continue
            yield from found

    def _new_flow(self, key: FlowKey, pkt: PacketFields, ts: float) -> Flow:
        """Create a flow, deciding which side is the server."""
        src_mac, dst_mac, src_ip, dst_ip, proto, sport, dport, flags, _, _, _ = pkt
        tcp = proto == PROTO_TCP
        ports = self._tcp if tcp else self._udp
        syn = flags & (TCP_SYN | TCP_ACK)
        if tcp and syn == TCP_SYN:
            src_is_server = False
        elif tcp and syn == TCP_SYN | TCP_ACK:
            src_is_server = True
        elif dport in ports:
            src_is_server = False
        elif sport in ports:
            src_is_server = True
        else:
            src_is_server = sport < dport
        src = Endpoint(_mac_text(src_mac), _ip_text(src_ip), sport)
        dst = Endpoint(_mac_text(dst_mac), _ip_text(dst_ip), dport)
        client, server = (dst, src) if src_is_server else (src, dst)
        stream: TcpStream | None = None
        datagram: DatagramDissector | None = None
        if tcp:
            stream_cls = self._tcp.get(server.port) or self._tcp.get(client.port)
            if stream_cls is not None:
                stream = TcpStream(stream_cls(), self._reorder_bytes, self._hold_budget)
        else:
            datagram_cls = self._udp.get(server.port) or self._udp.get(client.port)
            datagram = datagram_cls() if datagram_cls is not None else None
        client_ip = dst_ip if src_is_server else src_ip
        flow = Flow(client_ip, client.port, client, server, stream, datagram, ts)
        self._table.add(key, flow)
        return flow

    def _tcp_stream(
        self,
        flow: Flow,
        stream: TcpStream,
        payload: bytes,
        seq: int,
        ack: int,
        flags: int,
        from_client: bool,
        frame: int,
        ts: float,
    ) -> list[Observation]:
        """Reassemble one segment (*seq* already past any SYN) and feed what is ready.

        Returns a list rather than yielding: building a generator for every
        packet would cost more than the dissection of most of them.
        """
        found: list[Observation] = []
        if flags & TCP_ACK:
            peer = stream.to_client if from_client else stream.to_server
            if peer.held:
                data, gap = peer.acked(ack)
                if data:
                    found += self._deliver_stream(flow, data, gap, not from_client, frame, ts)
        if payload:
            own = stream.to_server if from_client else stream.to_client
            midstream = own.next_seq is None
            data, gap = own.push(seq, payload)
            if data:
                found += self._deliver_stream(flow, data, gap or midstream, from_client, frame, ts)
        return found

    def _deliver_stream(
        self, flow: Flow, data: bytes, gap: bool, to_server: bool, frame: int, ts: float
    ) -> list[Observation]:
        assert flow.stream is not None
        stream = flow.stream.dissector
        try:
            if gap:
                stream.gap(to_server=to_server)
            messages = stream.feed(data, to_server=to_server, frame=frame, ts=ts)
        except Exception as exc:  # a dissector bug must not blind the sensor
            self._stats.dissector_errors += 1
            reason = f"{stream.name} dissector failed: {type(exc).__name__}: {exc}"
            return [
                _observation("violation", frame, ts, "tcp", flow.client, flow.server, None, reason)
            ]
        client, server = flow.client, flow.server
        return [_observation("pdu", frame, ts, "tcp", client, server, m) for m in messages]

    def _deliver_datagram(
        self, flow: Flow, data: bytes, to_server: bool, frame: int, ts: float
    ) -> list[Observation]:
        datagram = flow.datagram
        assert datagram is not None
        try:
            messages = datagram.parse(data, to_server=to_server, frame=frame, ts=ts)
        except Exception as exc:  # a dissector bug must not blind the sensor
            self._stats.dissector_errors += 1
            reason = f"{datagram.name} dissector failed: {type(exc).__name__}: {exc}"
            return [
                _observation("violation", frame, ts, "udp", flow.client, flow.server, None, reason)
            ]
        client, server = flow.client, flow.server
        return [_observation("pdu", frame, ts, "udp", client, server, m) for m in messages]
