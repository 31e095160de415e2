"""The image on trial confirms itself through its health check within a deadline, or fails
with a verdict the next boot reports; confirming raises the counter only after image_ok."""

from __future__ import annotations

import pytest

from device_runtime.core.errors import RootOfTrustError, StorageError
from device_runtime.core.image_trust import ImageTrust
from device_runtime.core.slots import CONFIRMED, HEALTH_FAILED, TRIAL
from device_runtime.core.trial_boot import confirm, confirm_within, fail_trial
from device_runtime.ports.cpython.clock import SystemClock
from tests.device_runtime.slot_device import SlotDevice, device, signed

__all__ = ["device"]

V1 = signed("1.0.0", 1)
V2 = signed("1.1.0", 4)


def _trial(device: SlotDevice):  # type: ignore[no-untyped-def]
    device.provision(V1)
    boot = device.update(V2, 0)
    assert boot.trial
    return boot


def test_a_passing_check_confirms_and_the_counter_climbs(device: SlotDevice) -> None:
    boot = _trial(device)
    calls = iter([False, False, True])
    assert confirm_within(device.slots, boot, device.trust, lambda: next(calls), SystemClock(),
                          deadline_ms=5_000, interval_ms=1)  # fmt: skip
    assert device.states()[1] == CONFIRMED
    assert device.counter == 4
    after = device.boot()
    assert (after.slot, after.trial, after.reverted) == (1, False, None)


def test_a_check_that_never_passes_fails_at_the_deadline(device: SlotDevice) -> None:
    boot = _trial(device)
    clock = SystemClock()
    started = clock.monotonic_ms()
    assert not confirm_within(device.slots, boot, device.trust, lambda: False, clock,
                              deadline_ms=40, interval_ms=5)  # fmt: skip
    assert clock.monotonic_ms() - started >= 40
    assert device.counter == 1
    after = device.boot()
    assert (after.slot, after.reverted) == (0, 1)
    assert after.revert_reason == (
        "its trial failed: its health check did not pass within the deadline"
    )


def test_a_check_that_breaks_is_a_failed_check(device: SlotDevice) -> None:
    boot = _trial(device)

    def broken() -> bool:
        raise ConnectionError("no broker")

    assert not confirm_within(device.slots, boot, device.trust, broken, SystemClock(), 1_000)
    assert device.boot().revert_reason == "its trial failed: its health check failed"


def test_a_confirmed_image_has_nothing_to_confirm(device: SlotDevice) -> None:
    boot = device.provision(V1)
    assert confirm_within(device.slots, boot, device.trust, lambda: False, SystemClock(), 0)
    assert device.states()[0] == CONFIRMED


def test_confirm_again_after_a_cut_finishes_the_climb(device: SlotDevice) -> None:
    boot = _trial(device)
    device.slots[1].confirm()  # the power failed before the counter moved
    confirm(device.slots, boot, device.trust)
    assert device.counter == 4


def test_a_failed_trial_stays_failed(device: SlotDevice) -> None:
    boot = _trial(device)
    fail_trial(device.slots, boot, HEALTH_FAILED)
    assert device.states()[1] == TRIAL
    with pytest.raises(StorageError, match="trial failed: it cannot be confirmed"):
        confirm(device.slots, boot, device.trust)
    assert device.counter == 1
    with pytest.raises(StorageError, match="it is confirmed"):
        fail_trial(device.slots, device.boot(), HEALTH_FAILED)


class StuckCounter:
    """A counter that answers an increment without rising: a root of trust gone wrong."""

    def counter(self, index: int) -> int:
        return 1

    def increment(self, index: int) -> int:
        return 1


def test_a_counter_that_does_not_rise_stops_the_climb(device: SlotDevice) -> None:
    boot = _trial(device)
    stuck = ImageTrust(device.trust.public_key, device.trust.verify_signature, StuckCounter())
    with pytest.raises(RootOfTrustError, match="counter 0 did not rise from 1"):
        confirm(device.slots, boot, stuck)
