"""Installing into the inactive slot: what TUF said, the signature, the hardware and the
counter are all checked; a refused install leaves nothing that boots; downloads resume."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from io import BytesIO
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device_runtime.core.errors import SevenfoldError, StorageError
from device_runtime.core.signed_image import ImageError
from device_runtime.core.slot_install import FLUSH_EVERY, install, mark_pending
from device_runtime.core.slots import CONFIRMED, EMPTY, PENDING
from device_runtime.core.trial_boot import confirm
from tests.device_runtime.slot_device import SLOT_SIZE, SlotDevice, device, facts, signed

__all__ = ["device"]

V1 = signed("1.0.0", 2)
V2 = signed("1.1.0", 3, size=40_000)


def _refused(device: SlotDevice, image: bytes, **changes: object) -> str:
    with pytest.raises((ImageError, StorageError)) as caught:
        device.install(image, 0, **changes)
    assert device.slots[1].trailer().state == EMPTY
    assert device.boot().slot == 0, "a refused install must leave the running image booting"
    return caught.value.reason


def test_an_install_is_checked_then_marked_pending_with_the_next_generation(
    device: SlotDevice,
) -> None:
    device.provision(V1)
    image = device.install(V2, 0)
    assert (image.version, image.security_counter) == ("1.1.0", 3)
    assert device.states() == [CONFIRMED, EMPTY], "installed is not pending yet"
    assert device.slots[1].area.read_at(0, len(V2)) == V2
    mark_pending(device.slots, 0)
    assert device.states() == [CONFIRMED, PENDING]
    assert device.slots[1].trailer().generation == device.slots[0].trailer().generation + 1


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"hardware": ["another-board"]}, "not this device's 'sevenfold-board'"),
        ({"hardware": "sevenfold-board"}, "not this device's"),
        ({"model": "another-board"}, "not this device's 'another-board'"),
        ({"length": 0}, "not a positive integer"),
        ({"length": True}, "not a positive integer"),
        ({"sha256": b"\x00" * 31}, "SHA-256 is not 32 bytes"),
        ({"length": SLOT_SIZE}, "more than slot B holds (61440)"),
        ({"sha256": b"\x00" * 32}, "do not hash to the target's SHA-256"),
        ({"length": len(V2) + 10}, "image ends at offset"),
        ({"length": len(V2) - 10}, "truncated at offset"),
    ],
)
def test_what_tuf_said_is_checked(
    device: SlotDevice, changes: dict[str, object], reason: str
) -> None:
    device.provision(V1)
    assert reason in _refused(device, V2, **changes)


@pytest.mark.parametrize(
    ("image", "reason"),
    [
        (signed("1.1.0", 3, other_key=True), "signed by another key"),
        (signed("0.9.0", 1), "security counter 1, below the root of trust's 2: a rollback"),
        (V2[:700] + b"\x00" + V2[701:], "is not the image's hash"),
        (b"\x00" * 1000, "bad magic"),
    ],
)
def test_an_image_the_device_would_not_boot_is_not_installed(
    device: SlotDevice, image: bytes, reason: str
) -> None:
    device.provision(V1)
    assert reason in _refused(device, image)


def test_no_update_while_the_running_image_is_on_trial(device: SlotDevice) -> None:
    device.provision(V1)
    boot = device.update(V2, 0)
    with pytest.raises(StorageError, match="slot B runs an image that is trial"):
        device.install(V1, boot.slot)
    with pytest.raises(StorageError, match="slot B runs an image that is trial"):
        mark_pending(device.slots, boot.slot)
    confirm(device.slots, boot, device.trust)
    device.install(signed("1.2.0", 3), boot.slot)


def test_an_endless_source_is_read_no_further_than_the_target(device: SlotDevice) -> None:
    device.provision(V1)
    source = BytesIO(V2 + b"\x00" * (10 * len(V2)))
    install(device.slots, 0, source.read, device.trust, **facts(V2))
    assert source.tell() == len(V2)


def test_a_source_that_hands_back_more_than_asked_is_refused(device: SlotDevice) -> None:
    device.provision(V1)
    with pytest.raises(ImageError, match="returned 5000 bytes for"):
        install(device.slots, 0, lambda n: b"\x00" * 5000, device.trust, **facts(V2))


def test_a_resumed_download_takes_only_the_rest(tmp_path: Path) -> None:
    device = SlotDevice(tmp_path, slot_size=256 * 1024)
    try:
        device.provision(V1)
        image = signed("1.1.0", 3, size=150_000)
        source = BytesIO(image)
        progress: list[int] = []

        def dropping(n: int) -> bytes:
            if source.tell() >= 100_000:
                raise OSError("the connection dropped")
            return source.read(n)

        with pytest.raises(OSError):
            install(device.slots, 0, dropping, device.trust, progress=progress.append,
                    **facts(image))  # fmt: skip
        assert progress == [FLUSH_EVERY], "told once the first 64 KiB were durable"
        rest = BytesIO(image)
        rest.seek(progress[-1])
        install(device.slots, 0, rest.read, device.trust, resume_from=progress[-1],
                **facts(image))  # fmt: skip
        assert rest.tell() == len(image), "the rest, read once"
        mark_pending(device.slots, 0)
        boot = device.boot()
        assert (boot.slot, boot.trial, boot.image.version) == (1, True, "1.1.0")
    finally:
        device.flash.close()


def test_a_resume_over_other_bytes_is_refused_by_the_hashes(tmp_path: Path) -> None:
    device = SlotDevice(tmp_path, slot_size=256 * 1024)
    try:
        device.provision(V1)
        image = signed("1.1.0", 3, size=150_000)
        device.slots[1].area.write_at(0, b"\x00" * FLUSH_EVERY)
        rest = BytesIO(image)
        rest.seek(FLUSH_EVERY)
        with pytest.raises(ImageError, match="bad magic"):
            install(device.slots, 0, rest.read, device.trust, resume_from=FLUSH_EVERY,
                    **facts(image))  # fmt: skip
        assert device.slots[1].trailer().state == EMPTY
    finally:
        device.flash.close()


@pytest.mark.parametrize(
    ("offset", "reason"),
    [(100, "cannot resume at offset 100"), (10**9, "cannot resume at offset")],
)
def test_a_resume_at_an_offset_no_progress_gave_is_refused(
    device: SlotDevice, offset: int, reason: str
) -> None:
    device.provision(V1)
    with pytest.raises(StorageError, match=reason):
        install(device.slots, 0, BytesIO(V2).read, device.trust, resume_from=offset, **facts(V2))


def test_a_resume_into_a_marked_slot_is_refused(device: SlotDevice) -> None:
    device.provision(V1)
    device.install(V2, 0)
    mark_pending(device.slots, 0)
    with pytest.raises(StorageError, match="holds a marked image"):
        install(device.slots, 0, BytesIO(V2).read, device.trust, resume_from=4096, **facts(V2))


MUTATIONS: list[Callable[[bytes, int, int], bytes]] = [
    lambda image, at, value: image[:at] + bytes([image[at] ^ (value or 1)]) + image[at + 1 :],
    lambda image, at, value: image[:at],
    lambda image, at, value: image + bytes([value]) * (at % 50 + 1),
    lambda image, at, value: image[:at] + image[at + 1 :],
    lambda image, at, value: image[:at] + bytes([value]) + image[at:],
]


@settings(max_examples=150, deadline=None)
@given(
    mutation=st.sampled_from(range(len(MUTATIONS))),
    at=st.integers(0, len(V2) - 1),
    value=st.integers(0, 255),
    tuf_of_the_original=st.booleans(),
)
def test_no_damaged_image_is_installed(
    mutation: int, at: int, value: int, tuf_of_the_original: bool
) -> None:
    """A flipped, cut, lengthened, shortened or padded image, whether TUF described the
    original or the damaged bytes: the image's own checks or TUF's refuse every one, except
    a tail after the original that TUF's length says not to read (endless data)."""
    damaged = MUTATIONS[mutation](V2, at, value)
    unread_tail = tuf_of_the_original and damaged[: len(V2)] == V2
    with tempfile.TemporaryDirectory() as directory:
        device = SlotDevice(Path(directory))
        try:
            device.provision(V1)
            said = facts(V2 if tuf_of_the_original else damaged)
            try:
                install(device.slots, 0, BytesIO(damaged).read, device.trust, **said)
            except SevenfoldError as refusal:
                assert refusal.reason and not unread_tail
                assert device.slots[1].trailer().state == EMPTY
                return
            assert unread_tail, "installed a damaged image"
            assert device.slots[1].area.read_at(0, len(V2)) == V2
        finally:
            device.flash.close()
