"""A MicroPython device against the real fleet server over real mTLS.

The same bytecode bundle a board would get enrolls, heartbeats and counts its
boots durably; the server sees it exactly as it sees CPython devices. The unix
port keeps imported bytecode in the heap (a board freezes it into flash), so the
whole stack (core, MQTT client, TLS) gets 96 KiB here; it needs about 80 KiB.
The core's own tests run at 64 KiB (tests/device_runtime/test_under_micropython.py).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from firmware_images.micropython_bundle import build
from fleet_platform.pki import fleet_authority
from fleet_platform.server_config import ServerConfig
from sevenfold.server import FleetServer
from tests.components import binary

REPO = Path(__file__).resolve().parents[4]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    binary("micropython")
    out = tmp_path_factory.mktemp("bundle")
    build(root=REPO, out=out)
    return out


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[FleetServer]:
    binary("mosquitto")
    config = ServerConfig(
        state_dir=tmp_path / "state",
        http_port=0,
        broker_port=0,
        recovery_port=0,
        attestation_gate=False,
        heartbeat_interval=1,
    )
    with FleetServer(config=config) as server:
        yield server


def boot_device(bundle: Path, config: Path, beats: int) -> subprocess.CompletedProcess[str]:
    code = (
        "from device_runtime.ports.micropython.firmware_main import run\n"
        f"run({str(config)!r}, beats={beats})\n"
    )
    return subprocess.run(
        [binary("micropython"), "-X", "heapsize=96K", "-c", code],
        env={**os.environ, "MICROPYPATH": f"{bundle}:.frozen"},
        cwd=config.parent,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def test_micropython_device_enrolls_and_heartbeats(
    bundle: Path, fleet: FleetServer, tmp_path: Path
) -> None:
    assert fleet.broker is not None and fleet.registry is not None
    device = tmp_path / "board"
    credential = fleet_authority(fleet.config.state_dir).issue_client(
        common_name="mpy-0001", directory=device
    )
    config = device / "device.json"
    config.write_text(
        json.dumps(
            {
                "device_id": "mpy-0001",
                "host": fleet.broker.host,
                "port": fleet.broker.port,
                "ca": str(fleet.broker.ca_path),
                "cert": str(credential.cert_path),
                "key": str(credential.key_path),
                "state_dir": str(device / "state"),
                "hwmodel": "mcu-board",
                "swname": "sevenfold-mpy",
                "swversion": "0.1.0",
                "rot": "software",
            }
        )
    )
    first = boot_device(bundle, config, beats=2)
    assert first.returncode == 0, first.stdout + first.stderr
    assert first.stdout.split("\n")[:5] == [
        "boot 1",
        "enrolled interval 1",
        "beat 1",
        "beat 2",
        "done",
    ]
    second = boot_device(bundle, config, beats=1)
    assert second.returncode == 0, second.stdout + second.stderr
    assert second.stdout.startswith("boot 2\n")
    record = fleet.registry.get("mpy-0001")
    assert record is not None
    assert (record.hwmodel, record.boot_count, record.last_seq) == ("mcu-board", 2, 1)
