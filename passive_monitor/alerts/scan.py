"""Scan detection: one client reaching many hosts, or many ports of one host, quickly.

Legitimate masters poll a fixed, small set of outstations on one port; a
sweep of addresses or ports is the reconnaissance that precedes most attacks on
control networks. State is bounded per client and in the number of clients so a
flood of spoofed sources cannot exhaust the sensor's memory.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Literal

ScanKind = Literal["address-scan", "port-scan"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanFinding:
    """A threshold crossed by one client; ``targets`` is how many it reached in the window."""

    kind: ScanKind
    client: str
    server: str | None
    targets: int


class ScanDetector:
    """Sliding-window distinct-target counts per client."""

    __slots__ = (
        "_clients",
        "host_threshold",
        "max_clients",
        "max_events",
        "port_threshold",
        "window",
    )

    def __init__(
        self,
        *,
        window: float = 60.0,
        host_threshold: int = 20,
        port_threshold: int = 20,
        max_clients: int = 50_000,
        max_events: int = 1024,
    ) -> None:
        self.window = window
        self.host_threshold = host_threshold
        self.port_threshold = port_threshold
        self.max_clients = max_clients
        self.max_events = max_events
        self._clients: OrderedDict[str, deque[tuple[float, str, int]]] = OrderedDict()

    def connection(self, *, ts: float, client: str, server: str, port: int) -> list[ScanFinding]:
        """Record a new conversation; return the thresholds it makes the client cross."""
        events = self._clients.get(client)
        if events is None:
            if len(self._clients) >= self.max_clients:
                self._clients.popitem(last=False)
            events = deque(maxlen=self.max_events)
            self._clients[client] = events
        else:
            self._clients.move_to_end(client)
        events.append((ts, server, port))
        horizon = ts - self.window
        while events and events[0][0] < horizon:
            events.popleft()
        findings: list[ScanFinding] = []
        hosts = {host for _, host, _ in events}
        if len(hosts) >= self.host_threshold:
            findings.append(
                ScanFinding(kind="address-scan", client=client, server=None, targets=len(hosts))
            )
        ports = {p for _, host, p in events if host == server}
        if len(ports) >= self.port_threshold:
            findings.append(
                ScanFinding(kind="port-scan", client=client, server=server, targets=len(ports))
            )
        return findings
