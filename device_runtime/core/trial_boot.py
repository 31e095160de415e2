"""The image on trial confirms itself through its health check within a deadline, or fails.

The bootloader gives a pending image one boot (``boot_selection``); what it
does with it is the image's own business, here. :func:`confirm_within` polls
the application's health check until it passes, then :func:`confirm`s: the
slot's image_ok is written and flushed, and only then is the root of trust's
anti-rollback counter raised to the image's security counter, since a counter
raised before the image is confirmed would, after a power cut, leave the
device reverting to an image the counter no longer lets boot. A check that
does not pass in time, or fails, records its verdict (:func:`fail_trial`);
the caller then resets, and the next boot reverts and reports why. The
deadline is also the board's watchdog's: a trial image that hangs or
crashes is reset before it confirms, which reverts it just the same.
Portable: CPython and MicroPython.
"""

from device_runtime.core.slots import CONFIRMED, DEADLINE_PASSED, HEALTH_FAILED

TYPE_CHECKING = False
if TYPE_CHECKING:
    from device_runtime.core.boot_selection import Boot
    from device_runtime.core.image_trust import ImageTrust
    from device_runtime.core.port_types import Clock, HealthCheck
    from device_runtime.core.slots import Slot


def confirm(slots: "list[Slot]", boot: "Boot", trust: "ImageTrust") -> None:
    """Make the booted image permanent and raise the counter to its security counter.

    Called again after a power cut, it finishes what the first call began.
    """
    if boot.trial and slots[boot.slot].trailer().state != CONFIRMED:
        slots[boot.slot].confirm()
    trust.advance(boot.image.security_counter)


def fail_trial(slots: "list[Slot]", boot: "Boot", verdict: int) -> None:
    """Record why the image on trial failed; the caller resets and the next boot reverts."""
    slots[boot.slot].fail_trial(verdict)


def confirm_within(
    slots: "list[Slot]",
    boot: "Boot",
    trust: "ImageTrust",
    healthy: "HealthCheck",
    clock: "Clock",
    deadline_ms: int,
    interval_ms: int = 1000,
) -> bool:
    """Poll *healthy* until it passes (confirm, True) or *deadline_ms* pass or it raises
    (the verdict recorded, False). A confirmed image returns True at once."""
    if not boot.trial:
        return True
    start = clock.monotonic_ms()
    while True:
        try:
            passed = healthy()
        except Exception:  # a check that breaks is a check that failed
            fail_trial(slots, boot, HEALTH_FAILED)
            return False
        if passed:
            confirm(slots, boot, trust)
            return True
        if clock.monotonic_ms() - start >= deadline_ms:
            fail_trial(slots, boot, DEADLINE_PASSED)
            return False
        clock.sleep_ms(interval_ms)
