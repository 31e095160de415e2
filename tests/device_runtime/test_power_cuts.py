"""The power fails at every durable step of an update, under every persistence model.

A clean run of ``Board.update`` (download and install NEW into slot B, mark it
pending, the boot that begins its trial, the health check and confirm, the
counter's climb, the boot after) counts its steps: every flash write, erase
and flush and every counter increment (``power_cut.py``). Then, for each step
k and each model (ordered, dropped, reordered), a fresh board runs the same
update with the power cut at step k, and boots again from what its flash and
root of trust hold. After every cut, and every boot of the recovery, the board
boots exactly one of its two signed images and never one below the
anti-rollback counter (``Board.boot``), and the update either finishes (the
trial goes on, or the counter's climb is completed by the next boot) or was
cleanly abandoned: OLD runs, confirmed, and the same update run again from
the start completes. The failing update (its health check raises) is swept
the same way and must always end reverted to OLD, with the reason reported.

The counts are printed (``pytest -s``) and published in ``docs/updates.md``.
"""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from device_runtime.core.boot_selection import Boot
from device_runtime.core.slots import Slot
from device_runtime.core.trial_boot import confirm_within
from device_runtime.ports.cpython.clock import SystemClock
from device_runtime.rot.tpm import TpmRootOfTrust
from device_runtime.simulated_tpm import SimulatedTpm
from tests.device_runtime.power_cut import MODELS, PowerCut, Schedule
from tests.device_runtime.rot.backends import Backend
from tests.device_runtime.update_device import CLIMB, DEADLINE_MS, Board, failing_check
from tests.swtpm_fixtures import swtpm

__all__ = ["swtpm"]

MakeBoard = Callable[[str], Board]
Finished = Callable[[Board, list[Slot], Boot, int], bool]


def healthy() -> bool:
    return True


def confirmed_new(board: Board, slots: list[Slot], boot: Boot, floor: int) -> bool:
    return boot.image.version == "1.1.0" and not boot.trial and floor == board.base + CLIMB


def reverted_to_old(board: Board, slots: list[Slot], boot: Boot, floor: int) -> bool:
    """OLD runs, and the slot NEW was installed into was reverted, with the reason."""
    return (
        boot.image.version == "1.0.0"
        and boot.reverted is not None
        and board.holds_new(slots, boot.reverted)
        and "its trial failed" in str(boot.revert_reason)
        and floor == board.base
    )


def recover(board: Board, check: Callable[[], bool], finished: Finished) -> str:
    """Boot after the cut and let the board carry on; say how the update ended."""
    slots, trust, boot = board.boot()
    if boot.trial:
        confirm_within(slots, boot, trust, check, SystemClock(), DEADLINE_MS)
        slots, trust, boot = board.boot()
    if finished(board, slots, boot, trust.floor()):
        return "finished"
    assert boot.image.version == "1.0.0" and not boot.trial, "neither finished nor abandoned"
    before = board.downloaded
    board.update(Schedule(), check)
    slots, trust, boot = board.boot()
    assert finished(board, slots, boot, trust.floor()), "the abandoned update did not complete"
    resumed = board.downloaded - before < len(board.new)
    return "abandoned, completed on a retry that " + ("resumed" if resumed else "restarted")


def sweep(make_board: MakeBoard, check: Callable[[], bool], finished: Finished) -> Schedule:
    """Cut at every step of a clean run under every model; return the clean run's schedule."""
    board = make_board("clean")
    clean = Schedule()
    board.update(clean, check)
    slots, trust, boot = board.boot()
    assert finished(board, slots, boot, trust.floor())
    board.close()
    outcomes: Counter[str] = Counter()
    for at in range(clean.count):
        for model in MODELS:
            board = make_board(f"cut-{at}-{model}")
            schedule = Schedule(at, model)
            with pytest.raises(PowerCut):
                board.update(schedule, check)
            assert schedule.steps == clean.steps[: at + 1], "the cut run took another path"
            outcomes[recover(board, check, finished)] += 1
            board.close()
    phases = ", ".join(f"{phase} {n}" for phase, n in clean.by_phase().items())
    print(f"\npower cuts: {clean.count} cut points ({phases}) x {len(MODELS)} models ="
          f" {clean.count * len(MODELS)} runs; {dict(outcomes)}")  # fmt: skip
    return clean


@pytest.fixture
def memory_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory in RAM where there is one: what survives a cut is the schedule's decision,
    so the host's fsyncs would only make the sweep slow."""
    shm = Path("/dev/shm")
    if not shm.is_dir():
        yield tmp_path
        return
    directory = Path(tempfile.mkdtemp(prefix="sevenfold-cuts-", dir=shm))
    try:
        yield directory
    finally:
        shutil.rmtree(directory)


@pytest.fixture(params=["software", "dice"])
def portable_boards(request: pytest.FixtureRequest, memory_dir: Path) -> Iterator[MakeBoard]:
    backend = Backend(request.param, str(memory_dir))
    yield lambda name: Board(memory_dir / ("flash-" + name), lambda: backend.open(name))


def test_every_cut_of_an_update_boots_a_signed_image_and_ends_updated(
    portable_boards: MakeBoard,
) -> None:
    clean = sweep(portable_boards, healthy, confirmed_new)
    assert {"download and install", "mark pending", "boot selection", "trial and confirm",
            "counter update"} == set(clean.by_phase())  # fmt: skip
    assert clean.by_phase()["counter update"] == CLIMB


def test_every_cut_of_a_failing_update_ends_reverted_with_the_reason(
    portable_boards: MakeBoard,
) -> None:
    clean = sweep(portable_boards, failing_check, reverted_to_old)
    assert "counter update" not in clean.by_phase()


def test_every_cut_against_a_tpm_nv_counter(swtpm: SimulatedTpm, memory_dir: Path) -> None:
    rot = TpmRootOfTrust.open(tcti=swtpm.tcti)
    sweep(lambda name: Board(memory_dir / name, lambda: rot), healthy, confirmed_new)
