"""The learned picture of normal: who talks to whom, over what, asking for what.

Control networks are deterministic (the same HMI polls the same PLCs with the
same function codes all day), so a short learning period captures nearly all
legitimate traffic and anything outside it is worth a look. The baseline is
the operator's record of that decision, which is why it is a plain JSON file
written atomically, and why "learn this" folds an alert's activity into it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from device_runtime.core.errors import SevenfoldError
from device_runtime.ports.cpython.atomic_file import write_atomic
from passive_monitor.alerts.activity import Activity
from passive_monitor.alerts.addresses import is_host
from passive_monitor.alerts.model import Alert
from passive_monitor.sensor import Observation

FORMAT = "sevenfold-passive-baseline"
VERSION = 1

Connection = tuple[str, str, str]
Function = tuple[str, str, str, str]
Accepted = tuple[str, str, str, str, str]

# Rules whose activity the learned sets describe; "learn this" on any other
# rule records the alert's key as accepted instead.
_FUNCTION_RULES = frozenset({"new-function", "write", "command", "file"})


class BaselineFormatError(SevenfoldError):
    """A baseline file is not one this version wrote; learning again is safer than guessing."""

    code = "bad-baseline"


def service_of(observation: Observation) -> str:
    """The server-side service of a conversation, e.g. ``tcp/502``."""
    return f"{observation.transport}/{observation.server.port}"


class Baseline:
    """Learned assets, connections and functions, plus alerts an operator accepted."""

    __slots__ = (
        "accepted",
        "assets",
        "connections",
        "first_ts",
        "functions",
        "last_ts",
        "learned",
        "revision",
    )

    def __init__(self) -> None:
        self.assets: set[str] = set()
        self.connections: set[Connection] = set()
        self.functions: set[Function] = set()
        self.accepted: set[Accepted] = set()
        self.learned = 0
        self.first_ts: float | None = None
        self.last_ts: float | None = None
        # Bumped on every change, so a detector knows when verdicts it
        # remembered may no longer hold.
        self.revision = 0

    def learn(self, observation: Observation, activity: Activity | None) -> None:
        """Fold one observation, and what its message does, into the picture of normal.

        The caller classifies the message once for learning and detection alike.
        """
        self.learned += 1
        self.revision += 1
        if self.first_ts is None:
            self.first_ts = observation.ts
        self.last_ts = observation.ts
        client, server = observation.client.ip, observation.server.ip
        if not client:
            return
        for ip in (client, server):
            if ip not in self.assets and is_host(ip, transport=observation.transport):
                self.assets.add(ip)
        self.connections.add((client, server, service_of(observation)))
        message = observation.message
        if message is not None and activity is not None:
            self.functions.add((client, server, message.protocol, activity.function))

    def knows_connection(self, client: str, server: str, service: str) -> bool:
        return (client, server, service) in self.connections

    def knows_function(self, client: str, server: str, protocol: str, function: str) -> bool:
        return (client, server, protocol, function) in self.functions

    def accepts(self, alert_key: Accepted) -> bool:
        """True when an operator chose to learn an alert with this key."""
        return alert_key in self.accepted

    def learn_alert(self, alert: Alert) -> None:
        """ "Learn this": the alert's activity becomes normal and is not raised again."""
        self.revision += 1
        client = alert.client.ip if alert.client else ""
        server = alert.server.ip if alert.server else ""
        protocol = alert.protocol or ""
        function = alert.function or ""
        if alert.rule == "new-asset":
            self.assets.update(ip for ip in (client, server) if ip)
        elif alert.rule == "new-connection":
            self.assets.update(ip for ip in (client, server) if ip)
            self.connections.add((client, server, function))
        elif alert.rule in _FUNCTION_RULES:
            self.assets.update(ip for ip in (client, server) if ip)
            self.functions.add((client, server, protocol, function))
        else:
            self.accepted.add((alert.rule, client, server, protocol, function))

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "learned": self.learned,
            "first_ts": self.first_ts,
            "last_ts": self.last_ts,
            "assets": sorted(self.assets),
            "connections": [list(c) for c in sorted(self.connections)],
            "functions": [list(f) for f in sorted(self.functions)],
            "accepted": [list(a) for a in sorted(self.accepted)],
        }

    def save(self, path: Path) -> None:
        """Write atomically: a crash mid-save must not leave a torn baseline behind."""
        data = json.dumps(self.to_json(), indent=1, sort_keys=True).encode() + b"\n"
        write_atomic(path, data, mode=0o644)

    @classmethod
    def from_json(cls, data: object) -> Baseline:
        """Validate and rebuild; every defect is reported as a BaselineFormatError."""
        if not isinstance(data, dict):
            raise BaselineFormatError("top level must be a JSON object")
        if data.get("format") != FORMAT:
            raise BaselineFormatError(f"format must be {FORMAT!r}, got {data.get('format')!r}")
        if data.get("version") != VERSION:
            raise BaselineFormatError(f"unsupported version {data.get('version')!r}")
        baseline = cls()
        baseline.learned = _count(data.get("learned"))
        baseline.first_ts = _optional_ts(data.get("first_ts"), "first_ts")
        baseline.last_ts = _optional_ts(data.get("last_ts"), "last_ts")
        baseline.assets = set(_strings(data.get("assets"), "assets"))
        baseline.connections = {
            (t[0], t[1], t[2]) for t in _tuples(data.get("connections"), "connections", 3)
        }
        baseline.functions = {
            (t[0], t[1], t[2], t[3]) for t in _tuples(data.get("functions"), "functions", 4)
        }
        baseline.accepted = {
            (t[0], t[1], t[2], t[3], t[4]) for t in _tuples(data.get("accepted"), "accepted", 5)
        }
        return baseline

    @classmethod
    def load(cls, path: Path) -> Baseline:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise BaselineFormatError(f"{path}: not UTF-8 text") from exc
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BaselineFormatError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from exc
        return cls.from_json(data)


def _count(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise BaselineFormatError("learned must be a non-negative integer")
    return value


def _optional_ts(value: object, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BaselineFormatError(f"{name} must be a number or null")
    return float(value)


def _strings(value: object, name: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise BaselineFormatError(f"{name} must be a list of strings")
    return value


def _tuples(value: object, name: str, width: int) -> list[list[str]]:
    if not isinstance(value, list):
        raise BaselineFormatError(f"{name} must be a list")
    for index, item in enumerate(value):
        if (
            not isinstance(item, list)
            or len(item) != width
            or not all(isinstance(part, str) for part in item)
        ):
            raise BaselineFormatError(f"{name}[{index}] must be a list of {width} strings")
    return value
