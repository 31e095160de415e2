"""The failure outbox under MicroPython at 64 KiB, from ROMFS, on a flash-like file.

The device half (``outbox_on_device.py``) runs as a board runs from flash: two boots
fill a 16 KiB outbox past its budget (the oldest dropped and counted) with a crash, the
reboot reason the first boot marked before its reset, a security event and metrics.
CPython then mounts the same flash with the same core module and reads every record
MicroPython wrote: the format is one on both ends, and the crash's frames are the ones
``sys.print_exception`` printed. The heap the import costs is printed (``pytest -s``)
and recorded in docs/failure-reporting.md.

A board then uploads its outbox over mutual TLS to the fleet server's managed Mosquitto
and every record is stored, at 64 KiB in 128-byte batches (``BATCH``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from device_runtime.core import cbor
from device_runtime.core.outbox import Outbox, parse
from device_runtime.ports.cpython.block_device import FileBlockDevice
from failure_reports.failure_store import FailureStore
from firmware_images.micropython_bundle import romfs_image
from fleet_platform.pki import fleet_authority
from sevenfold.server import FleetServer
from tests.device_runtime.outbox_on_device import MARK
from tests.device_runtime.ports.micropython.test_firmware_main import fleet
from tests.device_runtime.test_under_micropython import bytecode_tree

__all__ = ["bytecode_tree", "fleet"]

pytestmark = [pytest.mark.timeout(300), pytest.mark.xdist_group("fleet-server")]

HEAP = "64K"
MODULE = "tests.device_runtime.outbox_on_device"
UPLOAD_HEAP = "64K"
BATCH = int(os.environ.get("UPLOAD_BATCH", "128"))
"""Bytes of records per upload from a 64 KiB board (MAX_BATCH is what the server takes):
connected and enrolled, it has 14.9 KB free, 9.3 KB once the outbox's modules are
imported, and a 256-byte batch's publish finds no 313 bytes in one piece
(docs/failure-reporting.md)."""
LAUNCHER = Path(__file__).with_name("flash_launcher.py")


def on_device(rom: Path, *args: str, heap: str = HEAP) -> list[str]:
    result = subprocess.run(
        [sys.executable, str(LAUNCHER), str(rom), heap, MODULE, *args],
        cwd=rom.parent, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Warning" not in output, output
    return [line[len(MARK) + 1 :] for line in result.stdout.splitlines() if line.startswith(MARK)]


def test_importing_the_failure_capture_costs_little_heap(
    bytecode_tree: Path, tmp_path: Path
) -> None:
    rom = tmp_path / "rom.img"
    rom.write_bytes(romfs_image(bytecode_tree))
    [line] = on_device(rom, "heap")
    imported, stored, captured, reported = (int(n) for n in line.split()[1:])
    print(
        f"importing from ROMFS: {imported} bytes of heap (outbox {stored}, "
        f"failure_capture {captured}, failure_report {reported})"
    )
    assert imported < 12288


def test_a_board_fills_its_outbox_across_a_reset_at_64k(
    bytecode_tree: Path, tmp_path: Path
) -> None:
    rom = tmp_path / "rom.img"
    rom.write_bytes(romfs_image(bytecode_tree))
    flash = tmp_path / "outbox.img"
    state = tmp_path / "state"
    [first] = on_device(rom, "fill", str(flash), str(state), "1", "400")
    assert int(first.split()[2]) > 0, "the first boot overfilled the outbox"
    [second] = on_device(rom, "fill", str(flash), str(state), "2", "5")
    _, pending, dropped, torn, free = second.split()
    print(f"after two boots: {pending} pending, {dropped} dropped, {free} bytes of heap free")
    assert torn == "0"
    assert int(pending) + int(dropped) == 403 + 8
    outbox = Outbox(FileBlockDevice(path=flash, size=4 * 4096), boot=3)
    bodies = {(boot, seq): cbor.loads(data) for boot, seq, data in parse(outbox.batch(1 << 20))}
    assert len(bodies) == int(pending)
    reboot = bodies[(2, 1)]
    crash = bodies[(2, 2)]
    assert isinstance(reboot, dict) and reboot["reason"] == "software-watchdog"
    assert isinstance(crash, dict) and crash["type"] == "OSError" and crash["fw"] == "1.0.0"
    frames = crash["frames"]
    assert isinstance(frames, list)
    assert [frame[2] for frame in frames][-4:] == ["_nested"] * 4
    assert all(isinstance(frame[1], int) and frame[1] > 0 for frame in frames)


def test_a_board_uploads_its_outbox_over_mtls_at_64k(
    bytecode_tree: Path, fleet: FleetServer, tmp_path: Path
) -> None:
    assert fleet.broker is not None and fleet.database is not None
    rom = tmp_path / "rom.img"
    rom.write_bytes(romfs_image(bytecode_tree))
    board = tmp_path / "board"
    flash = tmp_path / "outbox.img"
    [held] = on_device(rom, "fill", str(flash), str(tmp_path / "fill-state"), "1", "60")
    assert held.split()[1:3] == ["63", "0"]
    device_id = "mpy-fail-1"
    credential = fleet_authority(fleet.config.state_dir).issue_client(
        common_name=device_id, directory=board
    )
    config = board / "device.json"
    config.write_text(
        json.dumps(
            {
                "device_id": device_id,
                "host": fleet.broker.host,
                "port": fleet.broker.port,
                "ca": str(fleet.broker.ca_path),
                "cert": str(credential.cert_path),
                "key": str(credential.key_path),
                "state_dir": str(board / "state"),
                "flash": str(flash),
                "batch": BATCH,
            }
        )
    )
    heap = os.environ.get("UPLOAD_HEAP", UPLOAD_HEAP)
    lines = on_device(rom, "upload", str(config), heap=heap)
    assert lines[2] == "pending 63" and lines[3].startswith("free "), lines
    assert lines[4] == "wait 0" and lines[5].startswith("pending 0 "), lines
    store = FailureStore(database=fleet.database)
    assert store.count(device_id) == 63
    kinds = [row["kind"] for row in store.rows(device_id)]
    assert kinds[:3] == ["reboot", "crash", "security"]
    free = lines[3].split()[1]
    print(f"MicroPython board at {heap}, {BATCH}-byte batches: 63 records up, {free} B free")
