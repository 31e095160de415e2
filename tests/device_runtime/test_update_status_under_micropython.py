"""A MicroPython board reports an update's progress to the real fleet server, at 64 KiB.

The device half (``update_status_on_device.py``) runs from the bundle's ROMFS image
(``flash_launcher.py``), as a board runs from flash, with a 64 KiB heap, over mutual
TLS to the server's managed Mosquitto: it boots, enrolls and walks an update from
``checking`` to ``confirmed`` and a second one to ``failed``, its download's progress
rate-limited on the device and merged into one row on the server, then sends a stale
key (refused ``replayed``) and an unknown state (refused before it leaves). The test
also prints what importing the reporter costs the heap of a device already running the
agent.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from firmware_images.micropython_bundle import romfs_image
from fleet_platform.pki import fleet_authority
from sevenfold.server import FleetServer
from tests.device_runtime.ports.micropython.test_firmware_main import fleet
from tests.device_runtime.test_under_micropython import bytecode_tree
from tests.device_runtime.update_status_on_device import MARK

__all__ = ["bytecode_tree", "fleet"]

pytestmark = [pytest.mark.timeout(300), pytest.mark.xdist_group("fleet-server")]

HEAP = "64K"
MODULE = "tests.device_runtime.update_status_on_device"
LAUNCHER = Path(__file__).with_name("flash_launcher.py")
DEVICE = "mpy-upd-1"


def on_device(flash: Path, *args: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, str(LAUNCHER), str(flash), HEAP, MODULE, *args],
        cwd=flash.parent, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Warning" not in output, output
    return [line[len(MARK) + 1 :] for line in result.stdout.splitlines() if line.startswith(MARK)]


def test_importing_the_reporter_costs_little_heap(bytecode_tree: Path, tmp_path: Path) -> None:
    flash = tmp_path / "flash.img"
    flash.write_bytes(romfs_image(bytecode_tree))
    [line] = on_device(flash, "heap")
    _, imported, reporter, _ = line.split()
    print(f"importing update_status from ROMFS: {imported} bytes of heap, a reporter {reporter}")
    assert int(imported) < 8192


def test_a_board_reports_an_update_over_mtls_at_64k(
    bytecode_tree: Path, fleet: FleetServer, tmp_path: Path
) -> None:
    assert fleet.broker is not None and fleet.update_history is not None
    assert fleet.registry is not None
    board = tmp_path / "board"
    credential = fleet_authority(fleet.config.state_dir).issue_client(
        common_name=DEVICE, directory=board
    )
    config = board / "device.json"
    config.write_text(
        json.dumps(
            {
                "device_id": DEVICE,
                "host": fleet.broker.host,
                "port": fleet.broker.port,
                "ca": str(fleet.broker.ca_path),
                "cert": str(credential.cert_path),
                "key": str(credential.key_path),
                "state_dir": str(board / "state"),
            }
        )
    )
    flash = tmp_path / "flash.img"
    flash.write_bytes(romfs_image(bytecode_tree))
    lines = on_device(flash, "report", str(config))
    assert lines[:9] == [
        "boot 1",
        "ack 1 1",
        "progress sent 2 of 11",
        "ack 1 4",
        "ack 1 5",
        "ack 1 6",
        "ack 1 7",
        "refused replayed",
        "refused locally bad-field",
    ], lines
    assert lines[9].startswith("free "), lines
    entries = fleet.update_history.page(DEVICE)
    assert [(e.state, e.to_version, e.done, e.total) for e in entries] == [
        ("failed", "1.2.0", None, None),
        ("confirmed", "1.1.0", None, None),
        ("booted", "1.1.0", None, None),
        ("installed", "1.1.0", None, None),
        ("downloading", "1.1.0", 40960, 40960),
        ("checking", "1.1.0", None, None),
    ]
    assert entries[0].reason == "hash mismatch"
    assert fleet.update_history.last_key(DEVICE) == (1, 7)
    events = [e for e in fleet.registry.events(limit=50) if e.kind == "security"]
    assert [(e.device_id, e.code) for e in events] == [(DEVICE, "update-failed")]
    assert "hash mismatch" in events[0].reason
    rejected = [e for e in fleet.registry.events(limit=50) if e.kind == "rejected"]
    assert [e.code for e in rejected] == ["replayed"]
    print(f"MicroPython board at {HEAP} over mTLS: {lines[9]} bytes of heap at the end")
