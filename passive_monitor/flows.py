"""The flow table: one entry per conversation, bounded in number.

A sensor on a busy SPAN port sees scans and floods that create flows far faster
than they end, so the table holds at most ``max_flows`` entries and evicts the
least recently active one when full; flows idle longer than ``idle_timeout``
(capture time) are evicted too. Evictions are counted because a silent loss
of state would hide exactly the traffic an operator needs to see.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from passive_monitor.dissectors.base import DatagramDissector, StreamDissector
from passive_monitor.reassembly import HoldBudget, Reassembler

FlowKey = tuple[int, bytes, int, bytes, int]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One side of a conversation; ``mac`` is None when the link layer has none."""

    mac: str | None
    ip: str
    port: int


def flow_key(proto: int, ip_a: bytes, port_a: int, ip_b: bytes, port_b: int) -> FlowKey:
    """The same key for both directions of a conversation."""
    if (ip_a, port_a) <= (ip_b, port_b):
        return (proto, ip_a, port_a, ip_b, port_b)
    return (proto, ip_b, port_b, ip_a, port_a)


class TcpStream:
    """A dissected TCP conversation: its dissector and both reassembly directions.

    Only flows on a dissector's port get one, so a scan across thousands of
    unknown ports costs a flow entry each and nothing more.
    """

    __slots__ = ("dissector", "to_client", "to_server")

    def __init__(self, dissector: StreamDissector, reorder_bytes: int, budget: HoldBudget) -> None:
        self.dissector = dissector
        self.to_server = Reassembler(reorder_bytes, budget)
        self.to_client = Reassembler(reorder_bytes, budget)


class Flow:
    """Per-conversation state: who the server is, and how it is dissected."""

    __slots__ = (
        "client",
        "client_ip",
        "client_isn",
        "client_port",
        "datagram",
        "last_seen",
        "server",
        "stream",
    )

    def __init__(
        self,
        client_ip: bytes,
        client_port: int,
        client: Endpoint,
        server: Endpoint,
        stream: TcpStream | None,
        datagram: DatagramDissector | None,
        last_seen: float,
    ) -> None:
        self.client_ip = client_ip
        self.client_port = client_port
        self.client = client
        self.server = server
        self.stream = stream
        self.datagram = datagram
        self.last_seen = last_seen
        self.client_isn: int | None = None

    def release(self) -> None:
        """Return held segments to the shared budget when the flow goes away."""
        if self.stream is not None:
            self.stream.to_server.release()
            self.stream.to_client.release()


class FlowTable:
    """Least-recently-used table of flows with a hard size limit."""

    __slots__ = ("evicted", "flows", "idle_timeout", "max_flows")

    def __init__(self, max_flows: int, idle_timeout: float = 3600.0) -> None:
        if max_flows < 1:
            raise ValueError("max_flows must be at least 1")
        self.max_flows = max_flows
        self.idle_timeout = idle_timeout
        self.flows: OrderedDict[FlowKey, Flow] = OrderedDict()
        self.evicted = 0

    def __len__(self) -> int:
        return len(self.flows)

    def get(self, key: FlowKey, now: float) -> Flow | None:
        """The flow for *key*, marked as most recently used."""
        flow = self.flows.get(key)
        if flow is not None:
            flow.last_seen = now
            self.flows.move_to_end(key)
        return flow

    def add(self, key: FlowKey, flow: Flow) -> None:
        """Insert *flow*, evicting the least recently used ones beyond the limit."""
        flows = self.flows
        flows[key] = flow
        flows.move_to_end(key)
        while len(flows) > self.max_flows:
            flows.popitem(last=False)[1].release()
            self.evicted += 1

    def remove(self, key: FlowKey) -> None:
        """Forget a flow that ended or is being replaced by a new connection."""
        flow = self.flows.pop(key, None)
        if flow is not None:
            flow.release()

    def expire(self, now: float) -> int:
        """Evict flows idle for longer than the timeout; return how many."""
        flows = self.flows
        cutoff = now - self.idle_timeout
        count = 0
        while flows:
            key, flow = next(iter(flows.items()))
            if flow.last_seen >= cutoff:
                break
            del flows[key]
            flow.release()
            count += 1
        self.evicted += count
        return count
