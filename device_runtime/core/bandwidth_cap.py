"""A cap on how fast a device downloads: a token bucket on the clock port, in constant memory.

A device on a shared or metered link (a cellular modem, a plant network that
also carries control traffic) must not take all of it for an update. The
bucket fills at ``bytes_per_s`` up to ``burst`` bytes; each piece received
takes its size from it, and when it runs short :meth:`BandwidthCap.take` sleeps
(the clock port's ``sleep_ms``) until the debt is paid. The arithmetic is in
integer byte-milliseconds, so MicroPython's small ints stay small and no float
rounding drifts over a long download. Receiving is not slowed at the socket:
a piece up to one read's size arrives at link speed and the wait comes after,
which averages out to the cap over anything longer than the burst. Portable:
CPython and MicroPython.
"""

TYPE_CHECKING = False
if TYPE_CHECKING:
    from device_runtime.core.port_types import Clock


class BandwidthCap:
    """At most *bytes_per_s* on average, *burst* bytes at once (a tenth of a second's worth,
    at least 1 KiB, unless given)."""

    def __init__(self, clock: "Clock", bytes_per_s: int, burst: int = 0) -> None:
        if bytes_per_s <= 0 or burst < 0:
            raise ValueError("a bandwidth cap needs a positive rate")
        self.clock = clock
        self.rate = bytes_per_s
        self.burst_credit = (burst or max(bytes_per_s // 10, 1024)) * 1000
        self.credit = self.burst_credit
        self.last_ms = clock.monotonic_ms()

    def take(self, n: int) -> None:
        """Account for *n* bytes received, sleeping as long as the cap needs."""
        now = self.clock.monotonic_ms()
        self.credit = min(self.burst_credit, self.credit + (now - self.last_ms) * self.rate)
        self.last_ms = now
        self.credit -= n * 1000
        if self.credit < 0:
            self.clock.sleep_ms((self.rate - 1 - self.credit) // self.rate)
