"""Mosquitto restarts under running devices, and their heartbeats resume.

A real fleet server (``FleetServer`` with an external broker) and a real
Mosquitto that the test stops and starts again on the same port. A CPython
device (the agent with the paho transport, in a thread) and a MicroPython
device (the firmware bundle in ``micropython``) each heartbeat once a second;
after their second acknowledged beat the broker goes away for a while. Each
device must back off, reconnect, subscribe again and go on, with sequence
numbers that only increase, until every beat it was asked for has been
acknowledged by the server. The server's own side (the gateway's paho loop,
which subscribes again in on_connect) must recover as well, or no beat after
the outage is acknowledged.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from firmware_images.micropython_bundle import build
from fleet_platform.pki import CertificateAuthority
from fleet_platform.server_config import ExternalBroker, ServerConfig
from sevenfold.server import FleetServer
from tests.components import binary
from tests.device_runtime.cpython_devices import device_agent, device_transport
from tests.device_runtime.restartable_broker import RestartableBroker

REPO = Path(__file__).resolve().parents[2]
BEATS = 6
OUTAGE_S = 2.0
RUN_TIMEOUT_S = 90.0
AGENT_SETTINGS = {"timeout_ms": 2000, "backoff_ms": 300, "backoff_cap_ms": 2000}


@pytest.fixture
def fleet(
    restartable_broker: RestartableBroker, fleet_ca: CertificateAuthority, tmp_path: Path
) -> Iterator[FleetServer]:
    identity = fleet_ca.issue_client(
        common_name="sevenfold-server", directory=tmp_path / "server-identity", days=1
    )
    config = ServerConfig(
        state_dir=tmp_path / "state",
        http_port=0,
        heartbeat_interval=1,
        broker=ExternalBroker(
            host="127.0.0.1",
            port=restartable_broker.port,
            ca_path=fleet_ca.cert_path,
            cert_path=identity.cert_path,
            key_path=identity.key_path,
        ),
    )
    with FleetServer(config=config) as server:
        yield server


def wait_for(condition: threading.Event, what: str) -> None:
    assert condition.wait(RUN_TIMEOUT_S), f"timed out waiting for {what}"


def check_beats(seqs: list[int], fleet: FleetServer, device_id: str) -> None:
    """Every beat acknowledged, sequence numbers rising, the server holding the last.

    The outage outlasts the heartbeat interval, so at least one heartbeat
    went unanswered, and its number was not used again.
    """
    assert len(seqs) == BEATS, seqs
    assert seqs == sorted(set(seqs)), seqs
    assert seqs[-1] > BEATS, seqs
    assert fleet.registry is not None
    record = fleet.registry.get(device_id)
    assert record is not None
    assert record.last_seq == seqs[-1]


def test_cpython_device_heartbeats_through_a_broker_restart(
    restartable_broker: RestartableBroker,
    fleet: FleetServer,
    fleet_ca: CertificateAuthority,
    tmp_path: Path,
) -> None:
    device_id = "outage-cpy"
    restartable_broker.grant(device_id)
    transport = device_transport(
        authority=fleet_ca,
        port=restartable_broker.port,
        device_id=device_id,
        directory=tmp_path / "dev",
    )
    agent = device_agent(
        device_id=device_id, transport=transport, state=tmp_path / "dev" / "state", **AGENT_SETTINGS
    )
    beats: list[tuple[int, float]] = []
    two_beats = threading.Event()
    failures: list[BaseException] = []

    def on_beat(answer: dict[str, object]) -> None:
        seq = answer["seq"]
        assert isinstance(seq, int)
        beats.append((seq, time.monotonic()))
        if len(beats) == 2:
            two_beats.set()

    def device() -> None:
        try:
            agent.boot()
            agent.enroll()
            agent.run(beats=BEATS, on_beat=on_beat)
        except BaseException as exc:  # reported by the test thread
            failures.append(exc)
            two_beats.set()
        finally:
            transport.close()

    thread = threading.Thread(target=device, daemon=True)
    thread.start()
    wait_for(two_beats, "the first two beats")
    restartable_broker.restart(OUTAGE_S)
    thread.join(RUN_TIMEOUT_S)
    assert not thread.is_alive(), f"device still running; acknowledged {beats}"
    assert not failures, failures
    check_beats([seq for seq, _ in beats], fleet, device_id)
    assert any(at > restartable_broker.restarted_at for _, at in beats), beats


def test_micropython_device_heartbeats_through_a_broker_restart(
    restartable_broker: RestartableBroker,
    fleet: FleetServer,
    fleet_ca: CertificateAuthority,
    tmp_path: Path,
) -> None:
    device_id = "outage-mpy"
    restartable_broker.grant(device_id)
    bundle = tmp_path / "bundle"
    binary("micropython")
    build(root=REPO, out=bundle)
    board = tmp_path / "board"
    credential = fleet_ca.issue_client(common_name=device_id, directory=board, days=1)
    config = board / "device.json"
    config.write_text(
        json.dumps(
            {
                "device_id": device_id,
                "host": "127.0.0.1",
                "port": restartable_broker.port,
                "ca": str(fleet_ca.cert_path),
                "cert": str(credential.cert_path),
                "key": str(credential.key_path),
                "state_dir": str(board / "state"),
                "hwmodel": "mcu-board",
                "swname": "sevenfold-mpy",
                "swversion": "0.1.0",
                "rot": "software",
                **AGENT_SETTINGS,
            }
        )
    )
    code = (
        "from device_runtime.ports.micropython.firmware_main import run\n"
        f"run({str(config)!r}, beats={BEATS})\n"
    )
    # 96 KiB: the unix port keeps the whole stack's bytecode in the heap
    # (see tests/device_runtime/ports/micropython/test_firmware_main.py).
    process = subprocess.Popen(
        [binary("micropython"), "-X", "heapsize=96K", "-c", code],
        env={**os.environ, "MICROPYPATH": f"{bundle}:.frozen"},
        cwd=board,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[tuple[str, float]] = []
    two_beats = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append((line.rstrip("\n"), time.monotonic()))
            if sum(text.startswith("beat ") for text, _ in lines) == 2:
                two_beats.set()
        two_beats.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        wait_for(two_beats, "the first two beats")
        restartable_broker.restart(OUTAGE_S)
        process.wait(RUN_TIMEOUT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    reader.join(5)
    assert process.stderr is not None
    errors = process.stderr.read()
    output = "\n".join(text for text, _ in lines)
    assert process.returncode == 0, output + errors
    assert errors == "", errors
    texts = [text for text, _ in lines]
    assert texts[:2] == ["boot 1", "enrolled interval 1"], output
    assert texts[-1] == "done", output
    beats = [(int(text.split()[1]), at) for text, at in lines if text.startswith("beat ")]
    check_beats([seq for seq, _ in beats], fleet, device_id)
    assert any(at > restartable_broker.restarted_at for _, at in beats), output
