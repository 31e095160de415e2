"""The gateway's waiting room: one line per device, served in turn.

A single shared queue lets one chatty (or hostile) device push everyone else's
requests back: with 1,024 places and one device filling them, a good device
waited seconds. Here every device has its own short line, and a worker's batch
takes at most one request from each device that is waiting, going round the
devices in the order they arrived. A device whose line is full, or a server
whose total is reached, is refused at once so the caller can answer "busy"
instead of letting the request time out in silence.

While a device's request is being served, that device's next request waits:
requests of one device are served in the order they arrived and never by two
workers at once, so its sequence numbers reach storage in order.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

Refusal = Literal["device-full", "server-full"]
Route = tuple[str, bool]


@dataclass(frozen=True, slots=True)
class Work:
    """One received request, not yet decoded: who sent it, what, and when."""

    device_id: str
    payload: bytes
    received_at: datetime
    received_mono: float
    route: Route = ("app", False)
    """(plane, via the recovery listener): where the request came from and its answer goes."""


class FairQueue:
    """Per-device FIFO lines with a cap per device and in total; safe across threads."""

    def __init__(self, *, per_device: int = 16, total: int = 4096) -> None:
        if per_device < 1 or total < per_device:
            raise ValueError("need 1 <= per_device <= total")
        self.per_device = per_device
        self.total = total
        self._lines: OrderedDict[str, deque[Work]] = OrderedDict()
        self._serving: set[str] = set()
        self._count = 0
        self._closed = False
        self._ready = threading.Condition()

    def __len__(self) -> int:
        return self._count

    def oldest_wait(self, now: float) -> float:
        """Seconds the longest-waiting request has waited (0 when none waits)."""
        with self._ready:
            heads = [line[0].received_mono for line in self._lines.values() if line]
        return max(now - min(heads), 0.0) if heads else 0.0

    def put(self, work: Work) -> Refusal | None:
        """Queue *work*; None when queued, else why it was refused."""
        with self._ready:
            if self._count >= self.total:
                return "server-full"
            line = self._lines.get(work.device_id)
            if line is None:
                line = self._lines[work.device_id] = deque()
            elif len(line) >= self.per_device:
                return "device-full"
            line.append(work)
            self._count += 1
            self._ready.notify()
        return None

    def take(self, *, limit: int, timeout: float) -> list[Work] | None:
        """Up to *limit* requests, at most one per device; [] on timeout, None once closed.

        The devices in the batch are marked as being served until :meth:`done`.
        """
        deadline = time.monotonic() + timeout
        with self._ready:
            while True:
                if self._closed:
                    return None
                batch = self._next_batch(limit)
                if batch:
                    return batch
                left = deadline - time.monotonic()
                if left <= 0:
                    return []
                self._ready.wait(left)

    def done(self, batch: list[Work]) -> None:
        """The devices of *batch* may be served again."""
        with self._ready:
            for work in batch:
                self._serving.discard(work.device_id)
            self._ready.notify_all()

    def close(self) -> None:
        """Wake every waiting worker; :meth:`take` returns None from now on."""
        with self._ready:
            self._closed = True
            self._ready.notify_all()

    def _next_batch(self, limit: int) -> list[Work]:
        batch: list[Work] = []
        served_lines: list[str] = []
        for device_id, line in self._lines.items():
            if len(batch) >= limit:
                break
            if device_id in self._serving:
                continue
            batch.append(line.popleft())
            served_lines.append(device_id)
        for device_id in served_lines:
            self._serving.add(device_id)
            line = self._lines[device_id]
            if line:
                # Round robin: a device that still has requests goes to the back.
                self._lines.move_to_end(device_id)
            else:
                del self._lines[device_id]
        self._count -= len(batch)
        return batch
