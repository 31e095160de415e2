"""Counters and a latency window the server exposes, in Prometheus' text format.

Everything the gateway does to a request ends in exactly one counted outcome
(answered, refused with a code, dropped, failed), so the operator can see a
flood, an overload or an internal fault as a number that moves, and a liveness
probe can be backed by figures rather than by a log line.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable

LATENCY_WINDOW = 4096
"""Service times kept for the quantiles: the most recent requests only."""


class Metrics:
    """Named counters with one optional label each, plus a window of service times."""

    def __init__(self) -> None:
        self._counters: dict[tuple[str, str], int] = {}
        self._latencies: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self._lock = threading.Lock()

    def count(self, name: str, label: str = "", by: int = 1) -> None:
        """Add *by* to counter *name* (with *label*, e.g. an error code)."""
        key = (name, label)
        with self._lock:
            self._counters[key] = self._counters.get(key, 0) + by

    def observe_latency(self, seconds: Iterable[float]) -> None:
        """Record the receive-to-answer time of served requests."""
        with self._lock:
            self._latencies.extend(seconds)

    def value(self, name: str, label: str = "") -> int:
        with self._lock:
            return self._counters.get((name, label), 0)

    def total(self, name: str) -> int:
        """Counter *name* summed over its labels."""
        with self._lock:
            return sum(value for (counted, _), value in self._counters.items() if counted == name)

    def latency_quantiles(self) -> dict[str, float]:
        """p50, p99 and max of the recent service times, in seconds (empty when none)."""
        with self._lock:
            window = sorted(self._latencies)
        if not window:
            return {}
        last = len(window) - 1
        return {
            "p50": window[last // 2],
            "p99": window[min(last, round(last * 0.99))],
            "max": window[last],
        }

    def snapshot(self) -> dict[str, int]:
        """Every counter as ``name`` or ``name{label}`` -> value."""
        with self._lock:
            items = sorted(self._counters.items())
        return {(f"{name}{{{label}}}" if label else name): value for (name, label), value in items}

    def prometheus(self, *, label_name: str = "code") -> str:
        """The counters and latency quantiles in the Prometheus text exposition format."""
        with self._lock:
            items = sorted(self._counters.items())
        lines: list[str] = []
        typed: set[str] = set()
        for (name, label), value in items:
            if name not in typed:
                lines.append(f"# TYPE {name} counter")
                typed.add(name)
            labels = f'{{{label_name}="{_escape(label)}"}}' if label else ""
            lines.append(f"{name}{labels} {value}")
        quantiles = self.latency_quantiles()
        if quantiles:
            lines.append("# TYPE sevenfold_gateway_latency_seconds summary")
            for key, quantile in (("p50", "0.5"), ("p99", "0.99")):
                name = f'sevenfold_gateway_latency_seconds{{quantile="{quantile}"}}'
                lines.append(f"{name} {quantiles[key]:.6f}")
        return "\n".join(lines) + "\n"


def _escape(label: str) -> str:
    return label.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
