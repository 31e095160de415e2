"""How many rejections per device the server writes down, so a hostile device cannot flood it.

Every rejected message is still answered; only the log line and the stored
event are rationed. A device that exceeds its budget gets one summary line
when the window closes, so the operator still sees that it kept misbehaving.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass(slots=True)
class _Window:
    started: float
    recorded: int = 0
    suppressed: int = 0


class RejectionBudget:
    """At most *per_window* recorded rejections per device in each *window_s* seconds."""

    def __init__(self, *, per_window: int = 30, window_s: float = 60.0) -> None:
        self.per_window = per_window
        self.window_s = window_s
        self._windows: dict[str, _Window] = {}
        self._lock = threading.Lock()

    def admit(self, device_id: str, now: float) -> tuple[bool, int]:
        """(record this one?, how many were suppressed in the window that just closed)."""
        with self._lock:
            window = self._windows.get(device_id)
            closed_suppressed = 0
            if window is None or now - window.started >= self.window_s:
                closed_suppressed = window.suppressed if window is not None else 0
                window = _Window(started=now)
                self._windows[device_id] = window
            if window.recorded < self.per_window:
                window.recorded += 1
                return True, closed_suppressed
            window.suppressed += 1
            return False, closed_suppressed
