"""Boot selection: one trial for a pending image, revert with the reason, never an image that
fails its signature or falls below the root of trust's anti-rollback counter."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from device_runtime.core.signed_image import ImageError
from device_runtime.core.slot_install import mark_pending
from device_runtime.core.slots import CONFIRMED, EMPTY, HEALTH_FAILED, MAGIC, PENDING, TRIAL
from device_runtime.core.trial_boot import confirm, fail_trial
from tests.device_runtime.slot_device import SlotDevice, device, signed

__all__ = ["device"]

V1 = signed("1.0.0", 1)
V2 = signed("1.1.0", 2)


def test_the_factory_image_boots_and_sets_the_counter(device: SlotDevice) -> None:
    boot = device.provision(V1)
    assert (boot.slot, boot.image.version, boot.trial, boot.reverted) == (0, "1.0.0", False, None)
    assert device.counter == 1
    assert device.boot().image.image_hash == boot.image.image_hash


def test_a_pending_image_gets_exactly_one_trial(device: SlotDevice) -> None:
    device.provision(V1)
    boot = device.update(V2, 0)
    assert (boot.slot, boot.image.version, boot.trial) == (1, "1.1.0", True)
    assert device.states() == [CONFIRMED, TRIAL]
    assert device.counter == 1, "a trial does not move the counter"
    for _ in range(2):
        again = device.boot()
        assert (again.slot, again.trial, again.reverted) == (0, False, 1)
        assert again.revert_reason == (
            "its trial failed: it was not confirmed before the next reset (a crash, a"
            " watchdog reset or a power cut during its trial)"
        )


def test_the_trial_s_verdict_is_the_revert_reason(device: SlotDevice) -> None:
    device.provision(V1)
    fail_trial(device.slots, device.update(V2, 0), HEALTH_FAILED)
    assert device.boot().revert_reason == "its trial failed: its health check failed"


def test_a_confirmed_update_boots_from_then_on(device: SlotDevice) -> None:
    device.provision(V1)
    confirm(device.slots, device.update(V2, 0), device.trust)
    boot = device.boot()
    assert (boot.slot, boot.image.version, boot.trial, boot.reverted) == (1, "1.1.0", False, None)
    assert device.counter == 2


def test_the_next_boot_finishes_the_counter_a_cut_left_behind(device: SlotDevice) -> None:
    device.provision(V1)
    device.update(signed("2.0.0", 5), 0)
    device.slots[1].confirm()  # the power failed before the first increment
    assert device.counter == 1
    assert device.boot().slot == 1
    assert device.counter == 5


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda image: image[:600] + bytes([image[600] ^ 1]) + image[601:], "SHA256 TLV"),
        (lambda image: signed("1.1.0", 2, other_key=True), "signed by another key"),
        (lambda image: signed("0.9.0", 0), "below the root of trust's 1: a rollback"),
        (lambda image: image[:-1] + bytes([image[-1] ^ 1]), "does not verify"),
    ],
)
def test_a_pending_image_that_fails_its_checks_never_boots(
    device: SlotDevice, damage: object, reason: str
) -> None:
    device.provision(V1)
    bad = damage(V2)  # type: ignore[operator]
    slot = device.slots[1]
    slot.erase()
    slot.area.write_at(0, bad)
    slot.area.flush()
    mark_pending(device.slots, 0)
    boot = device.boot()
    assert (boot.slot, boot.image.version, boot.trial, boot.reverted) == (0, "1.0.0", False, 1)
    assert boot.revert_reason is not None and reason in boot.revert_reason
    assert device.states() == [CONFIRMED, PENDING], "a refused image's trial never begins"


def test_a_damaged_newest_image_falls_back_to_the_older_one(device: SlotDevice) -> None:
    device.provision(V1)
    confirm(device.slots, device.update(signed("1.1.0", 1), 0), device.trust)
    device.slots[1].area.write_at(0, b"\x00")
    boot = device.boot()
    assert (boot.slot, boot.reverted) == (0, 1)
    assert "bad magic" in str(boot.revert_reason)


def test_nothing_boots_when_no_image_may(device: SlotDevice) -> None:
    assert "all empty" in _refusal(device)
    device.provision(V1)
    confirm(device.slots, device.update(V2, 0), device.trust)
    device.slots[1].area.write_at(0, b"\x00")
    reason = _refusal(device)
    assert "slot B: its image was refused: bad magic" in reason
    assert "slot A: its image was refused: image 1.0.0 has security counter 1, below" in reason


def test_a_pending_slot_older_than_the_confirmed_one_is_not_tried(device: SlotDevice) -> None:
    device.provision(V1)
    confirm(device.slots, device.update(V2, 0), device.trust)
    slot = device.slots[0]
    slot.erase()
    slot.area.write_at(0, signed("1.2.0", 2))
    slot.mark_pending(1)
    boot = device.boot()
    assert (boot.slot, boot.trial, boot.reverted) == (1, False, None)
    assert device.states() == [PENDING, CONFIRMED]


def _refusal(device: SlotDevice) -> str:
    with pytest.raises(ImageError) as caught:
        device.boot()
    return caught.value.reason


IMAGES = {
    "v1": V1,
    "v2": V2,
    "tampered": V2[:1000] + b"\x00" + V2[1001:],
    "other key": signed("1.1.0", 2, other_key=True),
    "v0": signed("0.9.0", 0),
}
TRUSTED = {"v0", "v1", "v2"}
"""Signed by the image key and intact; whether one may boot then depends on the counter."""


FIELD = st.sampled_from([0xFF, 0xFF, 0x01, 0x01, 0xF1, 0x00])
SOUND = st.builds(lambda *fields: _trailer(*fields), st.integers(0, 3), FIELD, FIELD)
TRAILER = st.one_of(SOUND, SOUND, SOUND, st.binary(min_size=72, max_size=72))
CONTENT = st.sampled_from(["v0", "v1", "v2", "v2", "tampered", "other key"])


def _trailer(generation: int, copy_done: int, image_ok: int) -> bytes:
    """A trailer with the magic and a sound generation: the states worth reaching."""
    raw = bytearray(b"\xff" * 72)
    raw[8:16] = generation.to_bytes(4, "little") + (generation ^ 0xFFFFFFFF).to_bytes(4, "little")
    raw[40] = copy_done
    raw[48] = image_ok
    raw[56:] = MAGIC
    return bytes(raw)


@settings(max_examples=300, deadline=None)
@given(
    contents=st.tuples(CONTENT, CONTENT),
    trailers=st.tuples(TRAILER, TRAILER),
    floor=st.integers(0, 2),
)
def test_whatever_the_slots_hold_only_a_trusted_image_boots(
    contents: tuple[str, str], trailers: tuple[bytes, bytes], floor: int
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        device = SlotDevice(Path(directory))
        try:
            _only_a_trusted_image_boots(device, contents, trailers, floor)
        finally:
            device.flash.close()


def _only_a_trusted_image_boots(
    device: SlotDevice, contents: tuple[str, str], trailers: tuple[bytes, bytes], floor: int
) -> None:
    for slot, name, raw in zip(device.slots, contents, trailers, strict=True):
        slot.erase()
        slot.area.write_at(0, IMAGES[name])
        slot.area.write_at(slot.area.size - 72, raw)
    while device.counter < floor:
        device.rot.increment(0)
    before = [slot.trailer() for slot in device.slots]
    try:
        boot = device.boot()
    except ImageError:
        event("nothing boots")
        return
    event("a trial boots" if boot.trial else "a confirmed image boots")
    assert contents[boot.slot] in TRUSTED
    assert boot.image.security_counter >= device.counter
    assert before[boot.slot].state in (PENDING, CONFIRMED)
    assert boot.trial == (before[boot.slot].state == PENDING)
    assert before[boot.slot].state != EMPTY
    written = [slot.area.read_at(slot.area.size - 72, 72) for slot in device.slots]
    for index, raw in enumerate(trailers):
        if index == boot.slot and boot.trial:
            assert written[index][:40] == raw[:40] and written[index][41:] == raw[41:]
        else:
            assert written[index] == raw, "boot selection wrote to a slot it did not boot"
