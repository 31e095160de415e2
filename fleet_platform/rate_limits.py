"""Per-device request rates: a token bucket for every device, checked before any work.

Valid requests need limits as much as invalid ones: 30,000 well-formed enrolls
from one certificate holder cost as much as 30,000 garbage messages. Each
device may send *burst* requests at once and *rate* per second after that;
past its allowance it is told once per *notice_interval_s* how long to wait
(the answer costs a publish, so a device that ignores it is not answered
again within that interval, only counted).

The table of buckets is bounded: the least recently active devices are
forgotten first, which only ever hands a device a fresh (full) bucket.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal

Verdict = Literal["allow", "notify", "drop"]


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float
    notified: float


class RateLimits:
    """Token buckets keyed by device id; safe across threads."""

    def __init__(
        self,
        *,
        rate: float = 5.0,
        burst: int = 20,
        notice_interval_s: float = 1.0,
        max_devices: int = 200_000,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = rate
        self.burst = burst
        self.notice_interval_s = notice_interval_s
        self.max_devices = max_devices
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def check(self, device_id: str, now: float) -> Verdict:
        """Spend a token: ``allow``; over the limit: ``notify`` (tell it) or ``drop``."""
        with self._lock:
            bucket = self._buckets.get(device_id)
            if bucket is None:
                bucket = _Bucket(tokens=float(self.burst), updated=now, notified=-math.inf)
                self._buckets[device_id] = bucket
                if len(self._buckets) > self.max_devices:
                    self._buckets.popitem(last=False)
            else:
                self._buckets.move_to_end(device_id)
                elapsed = max(now - bucket.updated, 0.0)
                bucket.tokens = min(float(self.burst), bucket.tokens + elapsed * self.rate)
                bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return "allow"
            if now - bucket.notified >= self.notice_interval_s:
                bucket.notified = now
                return "notify"
            return "drop"

    def retry_after_ms(self, device_id: str) -> int:
        """How long until the device has a token again, in milliseconds (at least 1)."""
        with self._lock:
            bucket = self._buckets.get(device_id)
            missing = 1.0 if bucket is None else max(1.0 - bucket.tokens, 0.0)
        return max(1, math.ceil(missing / self.rate * 1000))
