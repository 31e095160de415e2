"""A simulated board for the install and boot half of an update: its flash, its root of trust,
and the steps an update takes on it.

The flash is a file (``ports/cpython/block_device.py``) seen through
``CuttableFlash``; the root of trust is a real backend, opened afresh at every
boot as a board's first stage would (software or DICE in a directory of their
own, or a TPM that outlives every boot). A board starts with ``OLD`` (1.0.0)
provisioned in slot A and booted once; ``update`` then takes it to ``NEW``
(1.1.0, its security counter three above, so that confirming climbs the
counter in three increments). Security counters are offset by the counter's
value when the board was made (*base*): a TPM's counters cannot be reset, so
each board on one TPM starts where the last one left it.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from functools import cache
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric import ec

from device_runtime.core.boot_selection import Boot, select
from device_runtime.core.download import Downloader, Target
from device_runtime.core.errors import SevenfoldError
from device_runtime.core.image_trust import IMAGE_COUNTER, ImageTrust
from device_runtime.core.retry_schedule import RetrySchedule
from device_runtime.core.slot_install import install, mark_pending, provision
from device_runtime.core.slots import Slot, slot_pair
from device_runtime.core.trial_boot import confirm_within
from device_runtime.image_signer import public_point, sign_image
from device_runtime.ports.cpython import crypto
from device_runtime.ports.cpython.block_device import FileBlockDevice
from device_runtime.ports.cpython.clock import SystemClock
from device_runtime.ports.cpython.storage import DirectoryStore
from tests.device_runtime.power_cut import (
    CuttableCounters,
    CuttableFlash,
    CuttableStore,
    Schedule,
)

if TYPE_CHECKING:
    from device_runtime.core.port_types import MonotonicCounters

MODEL = "sevenfold-board"
FLASH_SIZE = 512 * 1024
KEY = ec.derive_private_key(0x5EF_E4F01D, ec.SECP256R1())
KEY_POINT = public_point(KEY.public_key())
CLIMB = 3
DEADLINE_MS = 10_000


def payload(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


@cache
def bad_image(base: int) -> bytes:
    """An earlier update that never confirmed: it sits in slot B when a board is made."""
    return sign_image(payload(80_000, 3), key=KEY, version="1.0.2", security_counter=base + 1)


@cache
def images(base: int) -> tuple[bytes, bytes]:
    """(OLD, NEW) for a board whose counter was *base* when it was made."""
    old = sign_image(payload(100_000, 1), key=KEY, version="1.0.0", security_counter=base)
    new = sign_image(payload(150_000, 2), key=KEY, version="1.1.0", security_counter=base + CLIMB)
    return old, new


def target(image: bytes) -> dict[str, Any]:
    """What the signed targets metadata says of *image*, as ``install`` takes it."""
    return {
        "length": len(image),
        "sha256": hashlib.sha256(image).digest(),
        "hardware": [MODEL],
        "model": MODEL,
    }


class SelfTestFailed(SevenfoldError):
    """The application's own self-test found it broken (the failing update's health check)."""


def failing_check() -> bool:
    raise SelfTestFailed("the application cannot reach its sensor")


class Board:
    """One simulated board: *directory* holds its flash and the agent's download record;
    *counters()* opens its root of trust.

    Made with OLD confirmed in slot A and, in slot B, BAD (1.0.2): an earlier update whose
    trial ended in a reset, so that the update under test installs over a used slot.
    """

    def __init__(self, directory: Path, counters: Callable[[], MonotonicCounters]) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.flash_path = directory / "flash"
        self.store = DirectoryStore(directory=directory / "agent")
        self.counters = counters
        self.base = counters().counter(IMAGE_COUNTER)
        self.old, self.new = images(self.base)
        self.downloaded = 0
        self._device: FileBlockDevice | None = None
        slots, trust = self.power_on(Schedule())
        provision(slots, BytesIO(self.old).read, trust)
        boot = select(slots, trust)
        bad = bad_image(self.base)
        install(slots, boot.slot, BytesIO(bad).read, trust, **target(bad))
        mark_pending(slots, boot.slot)
        assert select(*self.power_on(Schedule())).trial
        assert select(*self.power_on(Schedule())).reverted == 1

    def power_on(self, schedule: Schedule) -> tuple[list[Slot], ImageTrust]:
        """A boot's view of the board: its flash and counters, their steps on *schedule*."""
        if self._device is not None:
            self._device.close()
        self._device = FileBlockDevice(path=self.flash_path, size=FLASH_SIZE)
        flash = CuttableFlash(self._device, schedule)
        counters = CuttableCounters(self.counters(), schedule)
        return slot_pair(flash), ImageTrust(KEY_POINT, crypto.verify_ecdsa_der, counters)

    def close(self) -> None:
        if self._device is not None:
            self._device.close()

    def boot(self) -> tuple[list[Slot], ImageTrust, Boot]:
        """Boot with the power on, and check what booted against the board's two images."""
        slots, trust = self.power_on(Schedule())
        boot = select(slots, trust)
        floor = trust.floor()
        image = {"1.0.0": self.old, "1.1.0": self.new}[boot.image.version]
        slot = slots[boot.slot]
        assert slot.area.read_at(0, len(image)) == image, "booted bytes that were never signed"
        assert boot.image.security_counter >= floor, "booted below the anti-rollback counter"
        assert self.base <= floor <= self.base + CLIMB
        return slots, trust, boot

    def holds_new(self, slots: list[Slot], index: int) -> bool:
        return slots[index].area.read_at(0, len(self.new)) == self.new

    def update(self, schedule: Schedule, healthy: Callable[[], bool]) -> None:
        """From the running OLD, through NEW's trial, to the boot after it."""
        slots, trust = self.power_on(schedule)
        store = CuttableStore(self.store, schedule)
        schedule.phase = "boot selection"
        boot = select(slots, trust)
        schedule.phase = "download and install"
        self.download(slots, boot.slot, trust, store)
        schedule.phase = "mark pending"
        mark_pending(slots, boot.slot)
        slots, trust = self.power_on(schedule)
        schedule.phase = "boot selection"
        boot = select(slots, trust)
        schedule.phase = "trial and confirm"
        confirm_within(slots, boot, trust, healthy, SystemClock(), DEADLINE_MS)
        slots, trust = self.power_on(schedule)
        schedule.phase = "boot selection"
        select(slots, trust)

    def download(
        self, slots: list[Slot], running: int, trust: ImageTrust, store: CuttableStore
    ) -> None:
        """Install NEW as the agent does (``core/download.py``), resuming from the durable
        offset in the core's download record when the last attempt left one for NEW."""
        downloader = Downloader(store, RetrySchedule(SystemClock(), crypto.random_bytes),
                                get=self.serve)  # fmt: skip
        image = Target("new.img", "memory:new.img", len(self.new),
                       hashlib.sha256(self.new).digest(), [MODEL])  # fmt: skip
        downloader.install(slots, running, trust, image, MODEL)

    def serve(self, url: str, offset: int, max_length: int) -> ServedBytes:
        """The network, as a server that honours ranges answers: NEW from *offset* on."""
        return ServedBytes(self, offset)


class ServedBytes:
    """A server's answer to a GET of NEW from *offset*, read from memory (the sweep cuts the
    power, not the network: ``test_download.py`` is where a real server misbehaves)."""

    def __init__(self, board: Board, offset: int) -> None:
        self.board = board
        self.source = BytesIO(board.new)
        self.source.seek(offset)
        total = len(board.new)
        self.status = 206 if offset else 200
        self.length = total - offset
        self.content_range = (offset, total - 1, total) if offset else None

    def read(self, n: int) -> bytes:
        data = self.source.read(n)
        self.board.downloaded += len(data)
        return data

    def close(self) -> None:
        self.source.close()
