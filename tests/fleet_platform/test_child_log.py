"""A child's log stays bounded on disk and is read back from its end, with real child processes."""

from __future__ import annotations

import stat
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path

import pytest

from device_runtime.core.errors import ConfigError
from fleet_platform.child_log import TAIL_BYTES, ChildLog

WAIT = 10.0


def run_child(log: ChildLog, script: str) -> None:
    """Run ``python -c script`` writing into *log*, as the supervised children do; wait for it."""
    with log.open_for_launch() as output:
        child = subprocess.Popen(
            [sys.executable, "-c", script], stdout=output, stderr=subprocess.STDOUT
        )
    assert child.wait(timeout=WAIT) == 0


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def wait_for(condition: object, what: str) -> None:
    assert callable(condition)
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_since_launch_is_the_latest_process_and_tail_the_whole_file(tmp_path: Path) -> None:
    log = ChildLog(tmp_path / "child.log")
    try:
        run_child(log, "print('first run'); print('first run ends')")
        run_child(log, "import sys; print('second run'); sys.stderr.write('it failed\\n')")
        assert log.since_launch() == "second run\nit failed"
        assert log.tail(3) == "first run ends\nsecond run\nit failed"
        assert log.since_launch(1) == "it failed"
        assert mode_of(log.path) == 0o600
        assert not log.previous_path.exists()
    finally:
        log.close()


def test_a_log_over_the_limit_is_rotated_at_the_next_launch(tmp_path: Path) -> None:
    log = ChildLog(tmp_path / "child.log", limit=1000, check_interval=3600)
    try:
        run_child(log, "print('old generation ' * 100)")
        assert log.path.stat().st_size > 1000
        run_child(log, "print('new generation')")
        assert log.previous_path.read_text().startswith("old generation")
        assert log.path.read_text() == "new generation\n"
        assert mode_of(log.previous_path) == 0o600 and mode_of(log.path) == 0o600
        run_child(log, "print('newer ' * 300)")
        run_child(log, "print('newest')")
        # One previous generation only: the oldest is gone.
        assert log.previous_path.read_text().startswith("new generation\nnewer")
        assert log.path.read_text() == "newest\n"
    finally:
        log.close()


def test_a_log_under_the_limit_is_appended_to(tmp_path: Path) -> None:
    path = tmp_path / "child.log"
    path.write_text("from an earlier server run\n")
    path.chmod(0o644)
    log = ChildLog(path, limit=1000)
    try:
        run_child(log, "print('this run')")
        assert path.read_text() == "from an earlier server run\nthis run\n"
        assert mode_of(path) == 0o600
        assert log.since_launch() == "this run"
    finally:
        log.close()


def test_a_running_child_is_kept_under_the_limit(tmp_path: Path) -> None:
    """The watcher copies and truncates; the child's O_APPEND writes go on at the new end."""
    limit = 4096
    log = ChildLog(tmp_path / "child.log", limit=limit, check_interval=0.02)
    script = (
        "import sys, time\n"
        "for i in range(4000):\n"
        "    sys.stdout.write(f'line {i:05d} of a child that will not stop complaining\\n')\n"
        "    sys.stdout.flush()\n"
        "    time.sleep(0.0005)\n"
        "print('last line')\n"
    )
    try:
        with log.open_for_launch() as output:
            child = subprocess.Popen([sys.executable, "-c", script], stdout=output)
        largest = 0
        while child.poll() is None:
            largest = max(largest, log.path.stat().st_size)
            time.sleep(0.005)
        assert child.returncode == 0
        wait_for(lambda: log.path.stat().st_size <= limit, "the last rotation")
        written = 4000 * len("line 00000 of a child that will not stop complaining\n")
        assert written > 10 * limit
        # Bounded by the limit plus what the child writes in a few check intervals.
        assert largest < written / 2, (largest, written)
        current = log.path.read_bytes()
        previous = log.previous_path.read_bytes()
        assert b"\0" not in current and b"\0" not in previous, "a hole: writes past the old end"
        # The last rotation may have come after the last line: then it is in .1.
        assert (previous + current).endswith(b"last line\n")
        assert log.since_launch().endswith("last line")
        assert previous.startswith(b"line ") and len(previous) < written / 2
        assert mode_of(log.previous_path) == 0o600
    finally:
        log.close()


def test_a_child_that_dies_just_after_a_rotation_still_says_why(tmp_path: Path) -> None:
    log = ChildLog(tmp_path / "child.log", limit=2000, check_interval=3600)
    try:
        run_child(log, "print('an earlier run')")
        run_child(log, "print('chatter\\n' * 300, end=''); print('the reason it died')")
        assert log.bound() is True  # as the watcher would, right after the child's last words
        assert log.path.read_bytes() == b""
        assert log.since_launch(2) == "chatter\nthe reason it died"
        # Only this launch's lines, even when more are asked for than it wrote.
        assert "an earlier run" not in log.since_launch(1000)
        assert log.since_launch(1000).count("chatter") == 300
        assert log.tail() == ""
    finally:
        log.close()


def test_reading_a_huge_log_reads_only_its_end(tmp_path: Path) -> None:
    path = tmp_path / "child.log"
    line = b"x" * 99 + b"\n"
    chunk = line * ((1 << 20) // len(line))
    with path.open("wb") as big:
        for _ in range(32):  # 32 MiB
            big.write(chunk)
        big.write(b"the reason it died\n")
    log = ChildLog(path, limit=1 << 30)
    tracemalloc.start()
    try:
        tail = log.tail(2)
        since = log.since_launch(1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert tail == "x" * 99 + "\nthe reason it died"
    assert since == "the reason it died"
    assert peak < 4 * TAIL_BYTES, f"read {peak} bytes into memory for a 32 MiB log"


def test_a_line_cut_by_the_window_is_left_out(tmp_path: Path) -> None:
    path = tmp_path / "child.log"
    path.write_bytes(b"y" * (2 * TAIL_BYTES) + b"\nshort\n")
    assert ChildLog(path).tail(5) == "short"
    # The window (the last TAIL_BYTES) starts right after a newline: nothing is cut.
    path.write_bytes(b"a\n" + b"z" * (TAIL_BYTES - 7) + b"\nshort\n")
    assert ChildLog(path).tail(5) == "z" * (TAIL_BYTES - 7) + "\nshort"


def test_missing_file_reads_as_nothing(tmp_path: Path) -> None:
    log = ChildLog(tmp_path / "never-written.log")
    assert log.tail() == "" and log.since_launch() == ""
    assert log.bound() is False


def test_close_ends_the_watcher_and_a_new_launch_restarts_it(tmp_path: Path) -> None:
    log = ChildLog(tmp_path / "child.log", check_interval=0.01)

    def watchers() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name == "bound child.log"]

    log.open_for_launch().close()
    assert len(watchers()) == 1
    log.open_for_launch().close()
    assert len(watchers()) == 1
    log.close()
    assert watchers() == []
    log.close()
    log.open_for_launch().close()
    assert len(watchers()) == 1
    log.close()
    assert watchers() == []


def test_rotation_that_fails_is_an_os_error_for_the_launcher(tmp_path: Path) -> None:
    log = ChildLog(tmp_path / "child.log", limit=10)
    log.path.write_text("more than ten bytes\n")
    log.previous_path.mkdir()  # nothing can be renamed over a directory, not even by root
    with pytest.raises(OSError):
        log.open_for_launch()
    log.close()


@pytest.mark.parametrize(
    "options", [{"limit": 0}, {"limit": -1}, {"limit": True}, {"check_interval": 0.0}]
)
def test_bad_settings_are_config_errors(tmp_path: Path, options: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        ChildLog(tmp_path / "child.log", **options)  # type: ignore[arg-type]


def test_bad_line_count_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        ChildLog(tmp_path / "child.log").tail(0)
