"""Failure records: a crash's frames (bounded), reboot reasons across a reset, metrics."""

from __future__ import annotations

from pathlib import Path

from device_runtime.core import cbor
from device_runtime.core.failure_capture import (
    CUT,
    MAX_FRAMES,
    MAX_TEXT,
    FailureCapture,
    mark_reboot,
    take_reboot,
)
from device_runtime.core.outbox import MAX_PAYLOAD, Outbox, parse
from device_runtime.ports.cpython.block_device import FileBlockDevice
from device_runtime.ports.cpython.exception_frames import exception_frames
from device_runtime.ports.cpython.storage import DirectoryStore
from device_runtime.ports.micropython.exception_frames import parse_frames
from tests.device_runtime.stepped_clock import SteppedClock


def capture(tmp_path: Path) -> tuple[FailureCapture, Outbox, SteppedClock]:
    outbox = Outbox(FileBlockDevice(path=tmp_path / "flash", size=8192, erase_size=4096), boot=4)
    clock = SteppedClock()
    return FailureCapture(outbox, clock, "1.2.3", exception_frames), outbox, clock


def records(outbox: Outbox) -> list[dict[str, object]]:
    out = []
    for _, _, data in parse(outbox.batch(1 << 20)):
        body = cbor.loads(data)
        assert isinstance(body, dict)
        out.append(body)
    return out


def recurse(n: int) -> None:
    if n == 0:
        raise ValueError("x" * 500)
    recurse(n - 1)


def test_a_crash_is_recorded_with_its_frames_bounded(tmp_path: Path) -> None:
    failures, outbox, clock = capture(tmp_path)
    clock.sleep_ms(65_000)
    try:
        recurse(40)
    except ValueError as exc:
        assert failures.crash(exc) == (4, 1)
    [record] = records(outbox)
    assert record["k"] == "crash" and record["type"] == "ValueError"
    assert record["fw"] == "1.2.3" and record["up"] == 65
    message = record["msg"]
    assert isinstance(message, str) and len(message) == MAX_TEXT and message.endswith(CUT)
    frames = record["frames"]
    assert isinstance(frames, list) and len(frames) == MAX_FRAMES
    assert record["omitted"] == 1 + 41 - MAX_FRAMES, "the test, 41 calls of recurse"
    assert frames[0][2] == "test_a_crash_is_recorded_with_its_frames_bounded"
    assert frames[-1][2] == "recurse" and isinstance(frames[-1][1], int)


def test_a_crash_with_long_names_still_fits_one_record(tmp_path: Path) -> None:
    failures, outbox, _ = capture(tmp_path)

    def frames_of(exc: BaseException) -> list[tuple[str, int, str]]:
        return [("/" + "d" * 300 + str(n), n, "f" * 300) for n in range(40)]

    failures.frames_of = frames_of
    failures.crash(RuntimeError("boom"))
    [record] = records(outbox)
    assert len(cbor.dumps(record)) <= MAX_PAYLOAD
    assert isinstance(record["omitted"], int) and record["omitted"] >= 40 - MAX_FRAMES


def test_the_reboot_reason_marked_before_a_reset_is_read_once_after_it(tmp_path: Path) -> None:
    store = DirectoryStore(directory=tmp_path / "state")
    mark_reboot(store, "software-watchdog")
    assert take_reboot(store, "power-on") == "software-watchdog"
    assert take_reboot(store, "brown-out") == "brown-out", "the mark is read once"
    assert take_reboot(store) == "unknown"
    mark_reboot(store, "not-a-reason")
    assert take_reboot(store) == "unknown"


def test_reboots_security_events_and_metrics_are_records(tmp_path: Path) -> None:
    failures, outbox, clock = capture(tmp_path)
    failures.reboot("hardware-watchdog")
    failures.reboot("made-up")
    failures.security("rollback", "image 1.0.0 is below the counter's 3")
    clock.sleep_ms(7_200_000)
    failures.metrics(free_mem=12345, reconnects=2)
    got = records(outbox)
    assert [r["k"] for r in got] == ["reboot", "reboot", "security", "metrics"]
    assert got[0]["reason"] == "hardware-watchdog" and got[1]["reason"] == "unknown"
    assert got[2]["event"] == "rollback"
    assert got[3]["crash_free_s"] == 7200 and got[3]["free_mem"] == 12345


def test_micropython_tracebacks_parse_into_frames() -> None:
    text = (
        "Traceback (most recent call last):\n"
        '  File "main.py", line 12, in <module>\n'
        '  File "app/sensor.py", line 40, in read\n'
        '  File "lib.py", line x, in broken\n'
        '  File "frozen.py", line 3\n'
        "OSError: [Errno 5] EIO\n"
    )
    assert parse_frames(text) == [
        ("main.py", 12, "<module>"),
        ("app/sensor.py", 40, "read"),
        ("frozen.py", 3, ""),
    ]
