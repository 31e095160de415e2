"""A board for the download tests: 256 KiB A/B slots, one image confirmed in slot A, and the
agent's storage beside its flash; a "reboot" is a new board over the same files (new slots, a
root of trust opened afresh, the record read back). CPython only."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path
from typing import TYPE_CHECKING

from device_runtime.core.bandwidth_cap import BandwidthCap
from device_runtime.core.download import Downloader, Target
from device_runtime.core.retry_schedule import RetrySchedule
from device_runtime.ports.cpython.storage import DirectoryStore
from tests.device_runtime.slot_device import SlotDevice, signed
from tests.device_runtime.update_device import MODEL

if TYPE_CHECKING:
    from device_runtime.core.port_types import Clock

SLOT = 256 * 1024
V1 = signed("1.0.0", 2)
V2 = signed("1.1.0", 3, size=150_000)
PATH = "/tuf/targets/board/v2.img"
BASE_MS = 100
CAP_MS = 1600


class Board:
    """*running* confirmed in slot A (provisioned unless the board is rebooted)."""

    def __init__(self, directory: Path, running: bytes = V1, *, fresh: bool = True) -> None:
        self.directory = directory
        self.running = running
        self.device = SlotDevice(directory, slot_size=SLOT)
        self.store = DirectoryStore(directory=directory / "agent")
        self.closed = False
        if fresh:
            self.device.provision(running)

    def downloader(
        self, clock: Clock, *, attempts: int = 6, seed: int = 1, cap: BandwidthCap | None = None
    ) -> Downloader:
        """Back-off from 100 ms to 1.6 s, drawn from a generator seeded with *seed*."""
        schedule = RetrySchedule(clock, random.Random(seed).randbytes, base_ms=BASE_MS,
                                 cap_ms=CAP_MS, attempts=attempts)  # fmt: skip
        return Downloader(self.store, schedule, cap, timeout_s=0.5)

    def reboot(self) -> Board:
        self.close()
        return Board(self.directory, self.running, fresh=False)

    def close(self) -> None:
        if not self.closed:
            self.device.flash.close()
            self.closed = True


def target(url: str, image: bytes = V2, path: str = PATH, base: bytes = b"") -> Target:
    """What the signed metadata says of *image* served at *url* + *path*."""
    return Target(path.rsplit("/", 1)[1], url + path, len(image), hashlib.sha256(image).digest(),
                  [MODEL], base)  # fmt: skip
