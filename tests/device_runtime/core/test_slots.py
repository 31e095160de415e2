"""The block-device port and the slots' trailers, on the platform's own file-backed flash.

Plain functions and ``assert`` only: the same checks run under CPython (pytest)
and under the real MicroPython with a 64 KiB heap, each against its own port
(``ports/cpython/block_device.py``, ``ports/micropython/block_device.py``).
"""

import os
import struct
import sys

from device_runtime.core.block_device import Area
from device_runtime.core.errors import StorageError
from device_runtime.core.slots import (
    CONFIRMED,
    COPY_DONE,
    DEADLINE_PASSED,
    EMPTY,
    GENERATION,
    HEALTH_FAILED,
    IMAGE_OK,
    MAGIC,
    MAGIC_END,
    PENDING,
    TRAILER_SIZE,
    TRIAL,
    VERDICT,
    Trailer,
    slot_pair,
)
from tests.device_runtime.refusal import refused

PORTABLE = True
SECTOR = 4096
SIZE = 8 * SECTOR

if sys.implementation.name == "micropython":
    from device_runtime.ports.micropython.block_device import FileBlockDevice

    def _path(name):
        return name
else:
    from pathlib import Path

    from device_runtime.ports.cpython.block_device import FileBlockDevice

    _path = Path


def _refused(call, *args, errors=StorageError):
    return refused(call, *args, errors=errors)


def _name():
    return "/tmp/sevenfold-flash-" + os.urandom(8).hex()


def _with_device(check, size=SIZE):
    name = _name()
    device = FileBlockDevice(path=_path(name), size=size, erase_size=SECTOR)
    try:
        check(device)
    finally:
        device.close()
        os.remove(name)


def _trailer(magic=MAGIC, generation=1, complement=None, copy_done=0xFF, image_ok=0xFF,
             verdict=0xFF):  # fmt: skip
    raw = bytearray(b"\xff" * TRAILER_SIZE)
    if complement is None:
        complement = generation ^ 0xFFFFFFFF
    raw[TRAILER_SIZE - GENERATION : TRAILER_SIZE - GENERATION + 8] = struct.pack(
        "<II", generation, complement
    )
    raw[TRAILER_SIZE - MAGIC_END :] = magic
    raw[TRAILER_SIZE - COPY_DONE] = copy_done
    raw[TRAILER_SIZE - IMAGE_OK] = image_ok
    raw[TRAILER_SIZE - VERDICT] = verdict
    return bytes(raw)


def test_a_new_device_is_erased_and_keeps_what_was_flushed():
    name = _name()
    device = FileBlockDevice(path=_path(name), size=SIZE, erase_size=SECTOR)
    try:
        assert device.read_at(SECTOR - 512, 512) == b"\xff" * 512
        assert device.read_at(SIZE - 16, 16) == b"\xff" * 16
        device.write_at(100, b"slot")
        device.write_at(SIZE - 4, memoryview(b"tail"))
        device.flush()
    finally:
        device.close()
    device = FileBlockDevice(path=_path(name), size=SIZE, erase_size=SECTOR)
    try:
        assert device.read_at(98, 8) == b"\xff\xffslot\xff\xff"
        buffer = bytearray(4)
        device.readinto_at(SIZE - 4, memoryview(buffer))
        assert bytes(buffer) == b"tail"
        device.erase(0, SECTOR)
        assert device.read_at(100, 4) == b"\xff" * 4
    finally:
        device.close()
    reason = _refused(lambda: FileBlockDevice(path=_path(name), size=2 * SIZE), errors=StorageError)
    assert "holds " + str(SIZE) + " bytes" in reason
    os.remove(name)


def test_ranges_outside_the_device_and_partial_sectors_are__refused():
    def check(device):
        for call, args in (
            (device.read_at, (-1, 4)),
            (device.read_at, (SIZE - 2, 4)),
            (device.write_at, (SIZE, b"x")),
            (device.readinto_at, (SIZE - 1, bytearray(2))),
            (device.erase, (0, SIZE + SECTOR)),
        ):
            assert "outside the" in _refused(call, *args, errors=StorageError)
        assert "whole" in _refused(device.erase, 1, SECTOR, errors=StorageError)
        assert "whole" in _refused(device.erase, 0, SECTOR - 1, errors=StorageError)

    _with_device(check)
    assert "sectors" in _refused(
        lambda: FileBlockDevice(path=_path(_name()), size=SECTOR + 1, erase_size=SECTOR),
        errors=StorageError,
    )


def test_an_area_is_a_window_of_whole_sectors():
    def check(device):
        area = Area(device, SECTOR, 2 * SECTOR)
        area.write_at(0, b"first")
        assert device.read_at(SECTOR, 5) == b"first"
        assert "outside the 8192-byte" in _refused(area.read_at, 2 * SECTOR - 1, 2,
                                                  errors=StorageError)  # fmt: skip
        area.erase(0, SECTOR)
        assert device.read_at(SECTOR, 5) == b"\xff" * 5
        assert "outside" in _refused(lambda: Area(device, SIZE - SECTOR, 2 * SECTOR),
                                    errors=StorageError)  # fmt: skip
        assert "whole" in _refused(lambda: Area(device, 100, SECTOR), errors=StorageError)

    _with_device(check)


def test_a_trailer_reads_as_the_safer_state_whatever_a_torn_write_left():
    cases = (
        (b"\xff" * TRAILER_SIZE, EMPTY),
        (_trailer(), PENDING),
        (_trailer(copy_done=0x01), TRIAL),
        (_trailer(copy_done=0xF1), TRIAL),
        (_trailer(copy_done=0x01, image_ok=0x01), CONFIRMED),
        (_trailer(image_ok=0x01), CONFIRMED),
        (_trailer(copy_done=0x01, image_ok=0xF1), TRIAL),
        (_trailer(image_ok=0x00), TRIAL),
        (_trailer(complement=0xFFFFFFFF), EMPTY),
        (_trailer(generation=7, complement=7), EMPTY),
        (_trailer(magic=MAGIC[:15] + b"\x81"), EMPTY),
        (_trailer(magic=MAGIC[:8] + b"\xff" * 8), EMPTY),
    )
    for raw, state in cases:
        assert Trailer(raw).state == state, (raw.hex(), state)
    assert Trailer(_trailer(generation=9)).generation == 9


def test_a_failed_trial_says_why():
    assert "not confirmed before the next reset" in Trailer(_trailer(copy_done=1)).failure()
    assert Trailer(_trailer(verdict=HEALTH_FAILED)).failure() == "its health check failed"
    assert "within the deadline" in Trailer(_trailer(verdict=DEADLINE_PASSED)).failure()
    assert "0x7e" in Trailer(_trailer(verdict=0x7E)).failure()


def test_a_slot_goes_pending_trial_confirmed_and_back_to_empty():
    def check(device):
        a, b = slot_pair(device)
        assert (a.capacity, b.area.start) == (3 * SECTOR, 4 * SECTOR)
        assert b.trailer().state == EMPTY
        b.mark_pending(4)
        assert (b.trailer().state, b.trailer().generation) == (PENDING, 4)
        assert "it is pending" in _refused(b.confirm)
        b.begin_trial()
        assert b.trailer().state == TRIAL
        assert "it is trial" in _refused(b.begin_trial)
        b.confirm()
        assert b.trailer().state == CONFIRMED
        assert "it is confirmed" in _refused(b.fail_trial, HEALTH_FAILED)
        b.area.write_at(0, b"image")
        b.erase()
        assert b.trailer().state == EMPTY
        assert b.area.read_at(0, 5) == b"\xff" * 5
        assert a.trailer().state == EMPTY

    _with_device(check)


def test_a_failed_trial_cannot_be_confirmed_and_verdicts_are_known_ones():
    def check(device):
        slot = slot_pair(device)[1]
        slot.mark_pending(2)
        slot.begin_trial()
        assert "is not one of" in _refused(slot.fail_trial, 0xFF)
        assert "is not one of" in _refused(slot.fail_trial, 9)
        slot.fail_trial(DEADLINE_PASSED)
        assert slot.trailer().verdict == DEADLINE_PASSED
        assert "trial failed: it cannot" in _refused(slot.confirm)

    _with_device(check)


def test_trailer_fields_are_written_once_as_flash_allows():
    def check(device):
        slot = slot_pair(device)[0]
        slot.area.write_at(slot.area.size - GENERATION, struct.pack("<II", 3, 3 ^ 0xFFFFFFFF))
        slot.mark_pending(3)  # the same bits again: what a retry after a torn write does
        assert slot.trailer().generation == 3
        slot.erase()
        slot.area.write_at(slot.area.size - GENERATION, struct.pack("<II", 3, 3 ^ 0xFFFFFFFF))
        assert "cannot become" in _refused(slot.mark_pending, 4)
        slot.erase()
        slot.provision(1)
        assert slot.trailer().state == CONFIRMED
        assert "it is confirmed" in _refused(slot.provision, 1)

    _with_device(check)


def test_a_device_too_small_for_two_slots_is__refused():
    assert "no room" in _refused(lambda: _with_device(slot_pair, size=2 * SECTOR),
                                errors=StorageError)  # fmt: skip
