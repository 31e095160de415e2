"""A whole A/B update cycle, and a revert, under the real MicroPython with a 64 KiB heap.

The host signs the images (``image_signer``); ``slots_on_device.py`` runs the
device side from the mpy-cross bundle, in a ROMFS image outside the heap as a
board's flash holds it (``flash_launcher.py``), on the MicroPython unix port,
one interpreter per boot: provision, install NEW (300 KB, streamed from its
file into the port's file-backed flash), its trial and confirm, then a
failing update that reverts. What each boot printed is checked here, and
each boot's time and free heap printed for ``docs/updates.md``.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from device_runtime.image_signer import sign_image
from firmware_images.micropython_bundle import romfs_image
from tests.device_runtime.slots_on_device import MARK
from tests.device_runtime.test_under_micropython import bytecode_tree
from tests.device_runtime.update_device import KEY, KEY_POINT, MODEL, payload

__all__ = ["bytecode_tree"]

MODULE = "tests.device_runtime.slots_on_device"
LAUNCHER = Path(__file__).with_name("flash_launcher.py")
HEAP_SIZE = "64K"


REVERTED = "its trial failed: its health check failed"
STAGES = [
    # stage, its argument, then what a boot printed: slot, version, trial, counter, revert
    ("provision", "-", None),
    ("boot", "-", ["0", "1.0.0", "0", "1", "-"]),
    ("install", "0:new", None),
    ("healthy", "-", ["1", "1.1.0", "1", "1", "-"]),
    ("boot", "-", ["1", "1.1.0", "0", "3", "-"]),
    ("install", "1:bad", None),
    ("unhealthy", "-", ["0", "1.2.0", "1", "3", "-"]),
    ("boot", "-", ["1", "1.1.0", "0", "3", REVERTED]),
    ("boot", "-", ["1", "1.1.0", "0", "3", REVERTED]),
]


@pytest.fixture
def board_dir() -> Iterator[Path]:
    """The board's files at a short path of fixed length: the device keeps the path as a
    string, and pytest's temporary directories are long and grow, which costs a 64 KiB heap
    a varying few hundred bytes."""
    directory = Path(tempfile.mkdtemp(prefix="slots", dir="/tmp"))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_install_trial_confirm_and_revert_under_micropython(
    bytecode_tree: Path, board_dir: Path
) -> None:
    signed = {
        "old": sign_image(payload(60_000, 1), key=KEY, version="1.0.0", security_counter=1),
        "new": sign_image(payload(300_000, 2), key=KEY, version="1.1.0", security_counter=3),
        "bad": sign_image(payload(200_000, 3), key=KEY, version="1.2.0", security_counter=3),
    }
    for name, image in signed.items():
        (board_dir / f"{name}.img").write_bytes(image)
        (board_dir / f"{name}.sha256").write_text(hashlib.sha256(image).hexdigest())
    flash = board_dir / "flash.romfs"
    flash.write_bytes(romfs_image(bytecode_tree))
    figures = []
    for stage, argument, expected in STAGES:
        args = [stage, str(board_dir), MODEL, KEY_POINT.hex(), argument]
        result = subprocess.run(
            [sys.executable, str(LAUNCHER), str(flash), HEAP_SIZE, MODULE, *args],
            cwd=board_dir,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        output = result.stdout + result.stderr
        assert result.returncode == 0, f"{stage}: {output}"
        printed = {line.split()[1]: line.split(" ", 2)[2] for line in result.stdout.splitlines()
                   if line.startswith(MARK)}  # fmt: skip
        if expected is not None:
            assert printed["boot"].split(" ", 4) == expected, f"{stage}: {output}"
        milliseconds, free = printed["done"].split()
        figures.append(f"{stage} {milliseconds} ms, {free} B free")
    print(f"\nMicroPython at {HEAP_SIZE}, one interpreter per stage: " + "; ".join(figures))
