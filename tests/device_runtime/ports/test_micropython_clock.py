"""The MicroPython clock port only ever counts up, across the tick counter's wrap.

Runs under MicroPython (with the board's own ``time.ticks_diff``) and on
CPython (with the same modular arithmetic written out). The tick counter is
started just before its wrap, since waiting 12 days for the real one is not
a test.
"""

import time

from device_runtime.ports.micropython.clock import SystemClock

PORTABLE = True

# The board's period where there is one (2**30 on 32-bit ports, 2**62 on the
# 64-bit unix port), else the 32-bit one.
TICKS_PERIOD = time.ticks_add(0, -1) + 1 if hasattr(time, "ticks_add") else 1 << 30


def _ticks_diff(end, start):
    """MicroPython's ticks_diff: the signed distance within half a period."""
    return ((end - start + TICKS_PERIOD // 2) % TICKS_PERIOD) - TICKS_PERIOD // 2


def _board_ticks_diff():
    return getattr(time, "ticks_diff", _ticks_diff)


class _Ticks:
    """A tick counter that reads out the values given, the way the board's wraps."""

    def __init__(self, readings):
        self.readings = list(readings)

    def __call__(self):
        return self.readings.pop(0) % TICKS_PERIOD


def test_milliseconds_keep_growing_across_the_wrap():
    top = TICKS_PERIOD - 1
    ticks = _Ticks([top - 1500, top - 500, top + 1, top + 2500, top + 2500])
    clock = SystemClock(ticks_ms=ticks, ticks_diff=_board_ticks_diff())
    readings = [clock.monotonic_ms() for _ in range(4)]
    assert readings == [1000, 1501, 4000, 4000], readings


def test_the_board_clock_counts_from_zero_and_sleeps():
    if not hasattr(time, "ticks_ms"):
        return  # CPython has no tick counter; the CPython port has its own clock.
    clock = SystemClock()
    first = clock.monotonic_ms()
    clock.sleep_ms(20)
    assert 0 <= first <= clock.monotonic_ms() - 20
    assert clock.unix_time() > 1_600_000_000
