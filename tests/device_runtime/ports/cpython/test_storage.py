"""Durable device state survives a power cut in the middle of a write."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from device_runtime.core.errors import StorageError
from device_runtime.ports.cpython.storage import DirectoryStore

WRITER = """
import sys
from pathlib import Path
from device_runtime.ports.cpython.storage import DirectoryStore
store = DirectoryStore(directory=Path(sys.argv[1]))
n = 0
while True:
    n += 1
    store.write("counter", (str(n) + ":" + "x" * 65536).encode())
    if n == 3:
        print("ready", flush=True)
"""


def test_read_write_and_missing(tmp_path: Path) -> None:
    store = DirectoryStore(directory=tmp_path)
    assert store.read("boot_count") is None
    store.write("boot_count", b"7")
    assert store.read("boot_count") == b"7"
    assert (tmp_path / "boot_count").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize("key", ["", "../x", "a/b", ".hidden"])
def test_invalid_keys(tmp_path: Path, key: str) -> None:
    with pytest.raises(StorageError):
        DirectoryStore(directory=tmp_path).write(key, b"x")


def test_kill_during_writes_leaves_old_or_new_value(tmp_path: Path) -> None:
    for _ in range(3):
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True
        )
        assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
        time.sleep(0.05)
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
        value = DirectoryStore(directory=tmp_path).read("counter")
        assert value is not None
        number, _, padding = value.partition(b":")
        assert int(number) >= 3 and padding == b"x" * 65536
