"""Downloads of an update against a real HTTP server on loopback: resumed across a reboot from
the durable record, retried with back-off on the clock port, restarted or refused when the
server's answer does not fit, capped in bandwidth.

A "reboot" is a new board over the same flash file and storage directory: new slots, a new
root of trust opened from its files, a new record read back, a new downloader.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device_runtime.core import download_record
from device_runtime.core.bandwidth_cap import BandwidthCap
from device_runtime.core.download import Downloader, DownloadError, Target
from device_runtime.core.download_record import RECORD_KEY, DownloadRecord
from device_runtime.core.retry_schedule import RetrySchedule
from device_runtime.core.signed_image import ImageError
from device_runtime.core.slot_install import FLUSH_EVERY, mark_pending
from device_runtime.ports.cpython.clock import SystemClock
from tests.device_runtime import download_board
from tests.device_runtime.download_board import PATH, V2, Board
from tests.device_runtime.download_server import DownloadServer
from tests.device_runtime.stepped_clock import SteppedClock
from tests.device_runtime.update_device import MODEL

pytestmark = pytest.mark.timeout(120)


def seeded_random(seed: int) -> random.Random:
    return random.Random(seed)


def target(server: DownloadServer) -> Target:
    return download_board.target(server.url)


@pytest.fixture
def server() -> Iterator[DownloadServer]:
    with DownloadServer({PATH: V2}) as running:
        yield running


@pytest.fixture
def board(tmp_path: Path) -> Iterator[Board]:
    made = Board(tmp_path)
    yield made
    made.close()


def installs(board: Board, downloader: Downloader, server: DownloadServer) -> None:
    image = downloader.install(board.device.slots, 0, board.device.trust, target(server), MODEL)
    assert image.version == "1.1.0"
    assert download_record.load(board.store) == "", "the record outlived the install"
    mark_pending(board.device.slots, 0)
    boot = board.device.boot()
    assert boot.trial and boot.slot == 1


def interrupted(board: Board, server: DownloadServer, at: int) -> None:
    """A download cut after *at* bytes, with no attempts left to retry: the board then
    loses power (the test reboots it)."""
    server.faults = [f"drop:{at}"]
    downloader = board.downloader(SteppedClock(), attempts=1)
    with pytest.raises(DownloadError, match="gave up after 1 attempts") as caught:
        downloader.install(board.device.slots, 0, board.device.trust, target(server), MODEL)
    assert not caught.value.permanent


def test_a_download_cut_off_resumes_after_a_reboot_from_the_durable_offset(
    board: Board, server: DownloadServer
) -> None:
    interrupted(board, server, 100_000)
    record = download_record.load(board.store)
    assert isinstance(record, DownloadRecord) and record.offset == FLUSH_EVERY
    assert record.same_target("v2.img", len(V2), hashlib.sha256(V2).digest())
    board = board.reboot()
    before = server.served
    downloader = board.downloader(SteppedClock())
    installs(board, downloader, server)
    assert server.requests[-1] == (PATH, FLUSH_EVERY, "")
    assert server.served - before == len(V2) - FLUSH_EVERY == downloader.received
    board.close()


def test_each_durable_offset_is_told_after_its_record_is_saved(
    board: Board, server: DownloadServer
) -> None:
    """What the update agent reports progress from: each offset once it would survive."""
    downloader = board.downloader(SteppedClock())
    told: list[tuple[int, object]] = []

    def durable(offset: int) -> None:
        told.append((offset, download_record.load(board.store)))

    downloader.on_durable = durable
    installs(board, downloader, server)
    assert [offset for offset, _ in told] == list(range(FLUSH_EVERY, len(V2), FLUSH_EVERY))
    assert all(isinstance(r, DownloadRecord) and r.offset == o for o, r in told)


@pytest.mark.parametrize(
    "damage", ["torn", "flipped", "other-target", "other-format", "unaligned", "marked-slot"]
)
def test_a_record_that_cannot_vouch_for_the_slot_restarts_the_download_from_zero(
    damage: str, board: Board, server: DownloadServer
) -> None:
    interrupted(board, server, 140_000)
    path = board.directory / "agent" / RECORD_KEY
    data = bytearray(path.read_bytes())
    if damage == "torn":
        del data[len(data) // 2 :]
    elif damage == "flipped":
        data[12] ^= 0x04
    elif damage == "other-target":
        data = bytearray(DownloadRecord("v3.img", len(V2), bytes(32), FLUSH_EVERY).encode())
    elif damage == "other-format":
        data[4] = 2
    elif damage == "unaligned":
        sha = hashlib.sha256(V2).digest()
        data = bytearray(DownloadRecord("v2.img", len(V2), sha, FLUSH_EVERY + 1).encode())
    if damage != "marked-slot":
        path.write_bytes(bytes(data))
    else:  # the slot was installed and marked since (the record outlived a cut)
        board.device.install(V2, 0)
        mark_pending(board.device.slots, 0)
    board = board.reboot()
    before = server.served
    downloader = board.downloader(SteppedClock())
    installs(board, downloader, server)
    assert server.served - before == len(V2)
    assert server.requests[-1] == (PATH, None, "")
    (note,) = downloader.notes
    assert note.endswith(": starting from 0")
    expected = {"torn": "too short", "flipped": "fails its CRC", "other-target": "another target",
                "other-format": "not in format 1", "unaligned": "not a sector inside",
                "marked-slot": "holds a marked image"}  # fmt: skip
    assert expected[damage] in note
    board.close()


def test_a_record_is_dropped_when_the_install_refuses_the_bytes(
    board: Board, server: DownloadServer
) -> None:
    interrupted(board, server, 100_000)
    board = board.reboot()
    lying = Target("v2.img", server.url + PATH, len(V2), bytes(32), [MODEL])
    downloader = board.downloader(SteppedClock())
    download_record.save(board.store, DownloadRecord("v2.img", len(V2), bytes(32), FLUSH_EVERY))
    with pytest.raises(ImageError, match="do not hash to the target's SHA-256"):
        downloader.install(board.device.slots, 0, board.device.trust, lying, MODEL)
    assert download_record.load(board.store) == ""
    board.close()


def test_dropped_connections_5xx_and_stalls_are_retried_after_jittered_back_off(
    board: Board, server: DownloadServer
) -> None:
    server.faults = ["drop:30000", "status:503", "stall:2", "drop:20000", "status:500"]
    clock = SteppedClock()
    downloader = board.downloader(clock, seed=7)
    installs(board, downloader, server)
    offsets = [start for _, start, _ in server.requests]
    assert offsets == [None, 30000, 30000, 30000, 50000, 50000]
    # The waits are the schedule's own draws: failures 1, 2, 3 in a row, then (after the
    # good connection made progress) 1 and 2 again.
    draws = seeded_random(7)
    ceilings = [100, 200, 400, 100, 200]
    expected = [int.from_bytes(draws.randbytes(4)) * (c + 1) // 2**32 for c in ceilings]
    assert clock.sleeps == expected
    assert all(0 <= wait <= c for wait, c in zip(clock.sleeps, ceilings, strict=True))


def test_the_back_off_doubles_to_its_cap_and_gives_up_after_its_attempts(
    board: Board, server: DownloadServer
) -> None:
    server.faults = ["status:503"] * 8
    clock = SteppedClock()
    downloader = board.downloader(clock, attempts=7, seed=3)
    with pytest.raises(DownloadError, match="gave up after 7 attempts: the server answered 503"):
        downloader.install(board.device.slots, 0, board.device.trust, target(server), MODEL)
    draws = seeded_random(3)
    ceilings = [100, 200, 400, 800, 1600, 1600]
    assert clock.sleeps == [int.from_bytes(draws.randbytes(4)) * (c + 1) // 2**32 for c in ceilings]
    assert len(server.requests) == 7


def test_full_jitter_spreads_over_the_whole_range() -> None:
    clock = SteppedClock()
    schedule = RetrySchedule(clock, random.Random(11).randbytes, base_ms=1000, cap_ms=8000)
    waits = [schedule.delay_ms(4) for _ in range(2000)]
    assert min(waits) < 400 and max(waits) > 7600 and 3600 < sum(waits) / len(waits) < 4400


@pytest.mark.parametrize("status", [404, 403, 410])
def test_a_4xx_is_permanent_with_the_reason_and_not_retried(
    status: int, board: Board, server: DownloadServer
) -> None:
    server.faults = [f"status:{status}"]
    clock = SteppedClock()
    downloader = board.downloader(clock)
    with pytest.raises(DownloadError, match=f"v2.img: the server answered {status}") as caught:
        downloader.install(board.device.slots, 0, board.device.trust, target(server), MODEL)
    assert caught.value.permanent and clock.sleeps == [] and len(server.requests) == 1


@pytest.mark.parametrize(
    ("fault", "served", "note"),
    [
        ("status:416", len(V2), "refused to resume at byte 65536 (416)"),
        # The shifted body is refused unread, but the server had sent it: then the restart.
        ("shifted", len(V2) - FLUSH_EVERY + 1 + len(V2), "refused to resume at byte 65536 (206)"),
        ("ignore-range", len(V2), None),
    ],
)
def test_a_resume_the_server_does_not_honour_restarts_or_skips(
    fault: str, served: int, note: str | None, board: Board, server: DownloadServer
) -> None:
    interrupted(board, server, 100_000)
    board = board.reboot()
    server.faults = [fault]
    before = server.served
    downloader = board.downloader(SteppedClock())
    installs(board, downloader, server)
    assert server.served - before == served
    if note is None:
        assert downloader.notes == [] and downloader.received == len(V2)
        assert server.requests[-1] == (PATH, FLUSH_EVERY, "ignore-range")
    else:
        assert [note in n for n in downloader.notes] == [True]
        assert server.requests[-1] == (PATH, None, "")
    board.close()


def test_a_file_of_another_length_is_refused(board: Board, server: DownloadServer) -> None:
    interrupted(board, server, 100_000)
    board = board.reboot()
    server.faults = ["short"]
    downloader = board.downloader(SteppedClock())
    with pytest.raises(DownloadError, match=r"the server's file is 150[0-9]+ bytes") as caught:
        downloader.install(board.device.slots, 0, board.device.trust, target(server), MODEL)
    assert caught.value.permanent
    board.close()


def test_the_cap_holds_the_rate_on_the_clock_port(board: Board, server: DownloadServer) -> None:
    clock = SteppedClock()
    downloader = board.downloader(clock, cap=BandwidthCap(clock, 50_000, burst=4096))
    installs(board, downloader, server)
    slept = sum(clock.sleeps)
    expected_ms = (len(V2) - 4096) * 1000 // 50_000
    assert expected_ms <= slept <= expected_ms + len(clock.sleeps)


def test_the_cap_holds_the_rate_on_the_real_clock(board: Board, server: DownloadServer) -> None:
    """Loosely, as a lower bound only (a slow machine is slower, never faster): the precise
    figure is ``bench/bench_download.py``'s."""
    clock = SystemClock()
    rate = 500_000
    downloader = board.downloader(clock, cap=BandwidthCap(clock, rate, burst=8192))
    started = time.monotonic()
    installs(board, downloader, server)
    assert time.monotonic() - started >= 0.9 * (len(V2) - 8192) / rate


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200), st.integers(0, 120), st.binary(max_size=8))
def test_any_bytes_read_as_a_record_or_a_reason(junk: bytes, at: int, insert: bytes) -> None:
    """Arbitrary bytes, or a genuine record with bytes spliced in, never raise: they are a
    record (only the genuine one, unchanged) or the reason they are none."""
    genuine = DownloadRecord("v2.img", len(V2), hashlib.sha256(V2).digest(), FLUSH_EVERY).encode()
    for data in (junk, genuine[:at] + insert + genuine[at:]):
        read = download_record.decode(data)
        assert isinstance(read, str) or data == genuine
