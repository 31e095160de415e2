"""How many events and log lines per device the server writes down, so no device can flood them.

Every request is still answered; only what is written about it (the stored
audit event, the log line) is rationed. What a window rations away is counted,
and the first thing written in the next window says how much was left out, so
the operator still sees that the device kept misbehaving.

The table of windows is itself bounded: the oldest windows are forgotten first
when more devices than *max_devices* are being tracked.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass


@dataclass(slots=True)
class _Window:
    started: float
    recorded: int = 0
    suppressed: int = 0


class EventBudget:
    """At most *per_window* written items per device in each *window_s* seconds."""

    def __init__(
        self, *, per_window: int = 30, window_s: float = 60.0, max_devices: int = 100_000
    ) -> None:
        self.per_window = per_window
        self.window_s = window_s
        self.max_devices = max_devices
        self._windows: OrderedDict[str, _Window] = OrderedDict()
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
                self._windows.move_to_end(device_id)
                while len(self._windows) > self.max_devices:
                    self._windows.popitem(last=False)
            if window.recorded < self.per_window:
                window.recorded += 1
                return True, closed_suppressed
            window.suppressed += 1
            return False, closed_suppressed


class OncePerWindow:
    """Admits a key the first time, then again only after *window_s*; bounded in keys.

    For what must always be written when it is new but must not be written a
    thousand times when it repeats (a security event a device can replay).
    """

    def __init__(self, *, window_s: float, max_keys: int = 100_000) -> None:
        self.window_s = window_s
        self.max_keys = max_keys
        self._admitted: OrderedDict[Hashable, float] = OrderedDict()
        self._lock = threading.Lock()

    def admit(self, key: Hashable, now: float) -> bool:
        with self._lock:
            last = self._admitted.get(key)
            if last is not None and now - last < self.window_s:
                return False
            self._admitted[key] = now
            self._admitted.move_to_end(key)
            while len(self._admitted) > self.max_keys:
                self._admitted.popitem(last=False)
            return True
