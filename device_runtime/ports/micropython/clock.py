"""Clock port for MicroPython boards: ticks for deadlines, RTC for timestamps.

``time.ticks_ms()`` wraps around (every 2**30 ms, about 12.4 days, on 32-bit
boards), while the agent subtracts monotonic readings for its deadlines and
the uptime it reports. This clock adds up tick differences instead, so its
milliseconds only ever grow, provided it is read at least once per half a wrap
(about six days): the agent reads it at least once per heartbeat interval,
which the protocol caps at a day.
"""

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from upy import time
else:
    import time


class SystemClock:
    """*ticks_ms* and *ticks_diff* are the board's, or a test's tick counter near its wrap."""

    def __init__(
        self,
        ticks_ms: "Callable[[], int] | None" = None,
        ticks_diff: "Callable[[int, int], int] | None" = None,
    ) -> None:
        self._ticks_ms = ticks_ms or time.ticks_ms
        self._ticks_diff = ticks_diff or time.ticks_diff
        self._last = self._ticks_ms()
        self._elapsed = 0

    def monotonic_ms(self) -> int:
        now = self._ticks_ms()
        self._elapsed += self._ticks_diff(now, self._last)
        self._last = now
        return self._elapsed

    def sleep_ms(self, ms: int) -> None:
        time.sleep_ms(ms)

    def unix_time(self) -> int:
        return int(time.time())
