"""The alert record shared by the detector, the baseline's "learn this" and the exporters.

An alert is identified by what it is about (rule, client, server, protocol,
function) rather than by when it fired, so the same activity repeated by a
polling loop updates one alert's count and last-seen time instead of flooding
the SIEM, and the same id survives a restart of the monitor.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Literal, cast

Engine = Literal["policy", "protocol", "operational", "malware", "anomaly"]
Severity = Literal["low", "medium", "high", "critical"]
ENGINES: tuple[Engine, ...] = ("policy", "protocol", "operational", "malware", "anomaly")
SEVERITIES: tuple[Severity, ...] = ("low", "medium", "high", "critical")

# Frames kept as evidence per alert; the count says how many there were in all.
MAX_EVIDENCE = 10


@dataclass(frozen=True, slots=True, kw_only=True)
class Evidence:
    """A capture frame that showed the activity, so an analyst can open it in Wireshark."""

    frame: int
    ts: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Party:
    """One side of the alerted activity."""

    ip: str
    port: int | None = None
    mac: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Alert:
    """One deduplicated alert."""

    id: str
    rule: str
    engine: Engine
    severity: Severity
    title: str
    description: str
    protocol: str | None
    function: str | None
    client: Party | None
    server: Party | None
    technique: str | None
    evidence: tuple[Evidence, ...]
    count: int
    first_seen: float
    last_seen: float
    transport: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (JSON lines export, CLI ``--json``)."""
        return {
            "id": self.id,
            "rule": self.rule,
            "engine": self.engine,
            "severity": self.severity,
            "title": self.title,
            "description": self.description,
            "protocol": self.protocol,
            "function": self.function,
            "transport": self.transport,
            "client": _party_dict(self.client),
            "server": _party_dict(self.server),
            "technique": self.technique,
            "evidence": [{"frame": e.frame, "ts": e.ts} for e in self.evidence],
            "count": self.count,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Alert:
        """Rebuild an alert read back from JSON lines (for ``learn_alert`` from a file)."""
        engine = data["engine"]
        severity = data["severity"]
        if engine not in ENGINES or severity not in SEVERITIES:
            raise ValueError(f"unknown engine or severity: {engine!r}, {severity!r}")
        return cls(
            id=str(data["id"]),
            rule=str(data["rule"]),
            engine=cast(Engine, engine),
            severity=cast(Severity, severity),
            title=str(data["title"]),
            description=str(data["description"]),
            protocol=data.get("protocol"),
            function=data.get("function"),
            transport=str(data.get("transport", "")),
            client=_party(data.get("client")),
            server=_party(data.get("server")),
            technique=data.get("technique"),
            evidence=tuple(
                Evidence(frame=int(e["frame"]), ts=float(e["ts"])) for e in data["evidence"]
            ),
            count=int(data["count"]),
            first_seen=float(data["first_seen"]),
            last_seen=float(data["last_seen"]),
        )


def alert_id(
    rule: str, client: str | None, server: str | None, protocol: str | None, function: str | None
) -> str:
    """Stable id from what the alert is about."""
    key = "\x1f".join((rule, client or "", server or "", protocol or "", function or ""))
    return "PM-" + hashlib.sha256(key.encode()).hexdigest()[:16]


def _party_dict(party: Party | None) -> dict[str, Any] | None:
    if party is None:
        return None
    return {"ip": party.ip, "port": party.port, "mac": party.mac}


def _party(data: Any) -> Party | None:
    if data is None:
        return None
    port = data.get("port")
    return Party(ip=str(data["ip"]), port=None if port is None else int(port), mac=data.get("mac"))
