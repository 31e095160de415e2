"""Clock port for CPython devices and the simulator."""

from __future__ import annotations

import time


class SystemClock:
    """Monotonic milliseconds for deadlines, wall-clock seconds for timestamps."""

    def monotonic_ms(self) -> int:
        return time.monotonic_ns() // 1_000_000

    def sleep_ms(self, ms: int) -> None:
        time.sleep(ms / 1000)

    def unix_time(self) -> int:
        return int(time.time())
