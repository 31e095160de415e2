"""Clock port for MicroPython boards: ticks for deadlines, RTC for timestamps."""

import time


class SystemClock:
    def monotonic_ms(self):
        return time.ticks_ms()

    def sleep_ms(self, ms):
        time.sleep_ms(ms)

    def unix_time(self):
        return int(time.time())
