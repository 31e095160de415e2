"""Power cuts at the storage layer of a simulated device, at any one of its durable operations.

Every write, erase and flush of the flash (``CuttableFlash``, around the
file-backed block device) and every increment of the root of trust's counters
(``CuttableCounters``) and of the agent's own durable
records (``CuttableStore``) is one step of a ``Schedule``. A schedule with no cut
only counts them (and names each by phase and kind, for the report); one with
``cut_at=k`` lets steps 0..k-1 happen and, at step k, leaves the medium as a
power failure could and raises ``PowerCut`` out of whatever the device was
doing. What the medium holds after the cut depends on the model:

``ordered``
    Every step before k is durable; step k is torn: a write lands its first
    half, the next byte half-programmed (only its low nibble's bits cleared),
    an erase its first half. Checks that every step boundary is a state the
    next boot copes with.
``dropped``
    What was written since the last flush is lost, step k too: the device's
    cache died with it. Checks that every flushed state is one.
``reordered``
    What was written since the last flush is lost, except step k's torn part:
    the newest write reached the medium and the older, unflushed ones did not.
    Checks that nothing depends on a write the code did not flush first.

Counter increments and store writes are atomic and durable at once (a TPM's
NV increment, an atomic file replacement): cut at, one has not happened; cut
after, it has, whatever the model does to the flash.

The flash also enforces NOR's rule on the code above it: a write may only
clear bits, so one over bytes that hold something else fails the test.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

from device_runtime.core.block_device import ERASED

if TYPE_CHECKING:
    from device_runtime.core.port_types import BlockDevice, MonotonicCounters, Store

ORDERED = "ordered"
DROPPED = "dropped"
REORDERED = "reordered"
MODELS = (ORDERED, DROPPED, REORDERED)


class PowerCut(Exception):
    """The simulated device lost power in the middle of what it was doing."""


class Schedule:
    """Counts the device's durable steps and cuts the power at step *cut_at* (never if None)."""

    def __init__(self, cut_at: int | None = None, model: str = ORDERED) -> None:
        assert model in MODELS
        self.cut_at = cut_at
        self.model = model
        self.phase = "setup"
        self.steps: list[tuple[str, str]] = []
        self.flashes: list[CuttableFlash] = []

    @property
    def count(self) -> int:
        return len(self.steps)

    def by_phase(self) -> Counter[str]:
        return Counter(phase for phase, _ in self.steps)

    def step(self, kind: str, torn: Callable[[], None] | None = None) -> None:
        index = len(self.steps)
        phase = "counter update" if kind == "increment" else self.phase
        self.steps.append((phase, kind))
        if index != self.cut_at:
            return
        for flash in self.flashes:
            flash.lose_unflushed(self.model)
        if torn is not None and self.model != DROPPED:
            torn()
        for flash in self.flashes:
            flash.settle()
        raise PowerCut(f"power cut at step {index} ({phase}: {kind}, {self.model})")


class CuttableFlash:
    """A block device whose writes, erases and flushes are steps of *schedule*."""

    def __init__(self, device: BlockDevice, schedule: Schedule) -> None:
        self.device = device
        self.size = device.size
        self.erase_size = device.erase_size
        self.schedule = schedule
        self.unflushed: list[tuple[int, bytes]] = []
        schedule.flashes.append(self)

    def read_at(self, offset: int, n: int) -> bytes:
        return self.device.read_at(offset, n)

    def readinto_at(self, offset: int, buffer: bytearray | memoryview) -> None:
        self.device.readinto_at(offset, buffer)

    def write_at(self, offset: int, data: bytes | memoryview) -> None:
        data = bytes(data)
        old = self.device.read_at(offset, len(data))
        assert _programmable(old, data), f"a write at {offset} sets bits flash cannot set"
        self.schedule.step("write", lambda: self._program(offset, _torn(old, data)))
        self.unflushed.append((offset, old))
        self.device.write_at(offset, data)

    def erase(self, offset: int, n: int) -> None:
        old = self.device.read_at(offset, n)
        half = n // 2
        self.schedule.step("erase", lambda: self.device.write_at(offset, bytes([ERASED]) * half))
        self.unflushed.append((offset, old))
        self.device.erase(offset, n)

    def flush(self) -> None:
        self.schedule.step("flush")
        self.device.flush()
        self.unflushed.clear()

    def lose_unflushed(self, model: str) -> None:
        if model != ORDERED:
            for offset, old in reversed(self.unflushed):
                self.device.write_at(offset, old)
        self.unflushed.clear()

    def settle(self) -> None:
        self.device.flush()

    def _program(self, offset: int, data: bytes) -> None:
        """Programming clears bits: what lands is the old content AND the new."""
        old = int.from_bytes(self.device.read_at(offset, len(data)), "big")
        landed = old & int.from_bytes(data, "big")
        self.device.write_at(offset, landed.to_bytes(len(data), "big"))


def _programmable(old: bytes, data: bytes) -> bool:
    """Whether flash holding *old* can be programmed to *data*: no bit *data* sets is clear."""
    wanted = int.from_bytes(data, "big")
    return int.from_bytes(old, "big") & wanted == wanted


def _torn(old: bytes, data: bytes) -> bytes:
    """A write cut halfway: the first half programmed, one byte half-programmed, the rest not."""
    half = len(data) // 2
    partial = old[half] & (data[half] | 0xF0)
    return data[:half] + bytes([partial]) + old[half + 1 :]


class CuttableCounters:
    """A root of trust's counters, each increment a step of *schedule*."""

    def __init__(self, counters: MonotonicCounters, schedule: Schedule) -> None:
        self.counters = counters
        self.schedule = schedule

    def counter(self, index: int) -> int:
        return self.counters.counter(index)

    def increment(self, index: int) -> int:
        self.schedule.step("increment")
        return self.counters.increment(index)


class CuttableStore:
    """A key/value Store whose writes are steps; they replace a file atomically, so a cut
    leaves the old value (the agent's durable download record lives here)."""

    def __init__(self, store: Store, schedule: Schedule) -> None:
        self.store = store
        self.schedule = schedule

    def read(self, key: str) -> bytes | None:
        return self.store.read(key)

    def write(self, key: str, value: bytes) -> None:
        self.schedule.step("store write")
        self.store.write(key, value)
