"""How long a device waits before it tries a download again: exponential back-off, full jitter.

After the *k*-th failure in a row the wait is drawn uniformly from
``[0, min(cap_ms, base_ms * 2**(k-1))]`` ("full jitter", as AWS's architecture
notes name it): a fleet that lost its update server at once does not come back
at once, and the spread grows with the outage. The draw comes from the
device's random port and the wait is slept on its clock port, so a test with
a clock of its own sees every wait without sleeping. After ``attempts``
failures in a row the caller gives up with the last reason. Portable: CPython
and MicroPython.
"""

TYPE_CHECKING = False
if TYPE_CHECKING:
    from device_runtime.core.port_types import Clock, RandomBytes

_DRAW = 1 << 32


class RetrySchedule:
    """*attempts* tries in all; the waits between them doubling from *base_ms* to *cap_ms*."""

    def __init__(
        self,
        clock: "Clock",
        random_bytes: "RandomBytes",
        *,
        base_ms: int = 1000,
        cap_ms: int = 60000,
        attempts: int = 6,
    ) -> None:
        if base_ms <= 0 or cap_ms < base_ms or attempts < 1:
            raise ValueError("back-off needs 0 < base_ms <= cap_ms and at least one attempt")
        self.clock = clock
        self.random_bytes = random_bytes
        self.base_ms = base_ms
        self.cap_ms = cap_ms
        self.attempts = attempts

    def delay_ms(self, failures: int) -> int:
        """The wait after *failures* (at least 1) failures in a row."""
        ceiling = min(self.cap_ms, self.base_ms << min(failures - 1, 24))
        return int.from_bytes(self.random_bytes(4), "big") * (ceiling + 1) // _DRAW

    def wait(self, failures: int) -> bool:
        """Sleep before the next try and return True, or False once the tries are spent."""
        if failures >= self.attempts:
            return False
        self.clock.sleep_ms(self.delay_ms(failures))
        return True
