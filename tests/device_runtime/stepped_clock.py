"""A clock port whose time moves only when the device sleeps: back-off waits and bandwidth
caps are then exact and instant to test. It is a clock, not a mock: the code under test
reads and sleeps on it through the same port a board's clock implements. Portable: the
download tests under MicroPython use it too."""

PORTABLE_HELPER = True


class SteppedClock:
    def __init__(self, start_ms: int = 1_000_000) -> None:
        self.now_ms = start_ms
        self.sleeps: list[int] = []

    def monotonic_ms(self) -> int:
        return self.now_ms

    def sleep_ms(self, ms: int) -> None:
        self.sleeps.append(ms)
        self.now_ms += ms

    def unix_time(self) -> int:
        return 1_800_000_000 + self.now_ms // 1000
