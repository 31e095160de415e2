"""The fleet server as operators run it: managed broker, REST API, CLI from another shell."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from device_runtime.simulator import BrokerAddress
from fleet_platform import api_tokens
from fleet_platform.server_config import RuntimeInfo, ServerConfig
from sevenfold.cli.app import app
from sevenfold.cli.simulate import run_fleet
from sevenfold.server import FleetServer
from tests.components import binary


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


def test_rest_api_needs_the_operator_token(fleet: FleetServer) -> None:
    devices = f"{fleet.http_url}/api/v1/devices"
    assert httpx.get(devices).status_code == 401
    assert httpx.get(devices, headers={"Authorization": "Bearer wrong"}).status_code == 401
    token = api_tokens.read(fleet.config.state_dir)
    assert token is not None and len(token) >= 32
    assert (fleet.config.state_dir / api_tokens.TOKEN_FILE).stat().st_mode & 0o077 == 0
    ok = httpx.get(devices, headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200 and ok.json() == []


def test_openapi_lists_both_services(fleet: FleetServer) -> None:
    spec = httpx.get(f"{fleet.http_url}/openapi.json").json()
    assert "/api/v1/devices" in spec["paths"]
    assert "/tuf/metadata/{name}" in spec["paths"]


def test_simulated_devices_enroll_and_show_up_in_cli(fleet: FleetServer) -> None:
    state = fleet.config.state_dir
    assert fleet.broker is not None
    simulated = run_fleet(
        state=state,
        broker=BrokerAddress(
            host=fleet.broker.host,
            port=fleet.broker.port,
            ca_path=fleet.broker.ca_path,
            prefix="sevenfold",
        ),
        count=3,
        beats=2,
    )
    assert [d.error for d in simulated.devices] == [None, None, None]
    result = CliRunner().invoke(app, ["devices", "list", "--state", str(state), "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [row["device_id"] for row in rows] == ["sim-0001", "sim-0002", "sim-0003"]
    assert {row["status"] for row in rows} == {"online"}
    assert {row["last_seq"] for row in rows} == {2}
    assert {(row["rot_claimed"], row["rot_verified"]) for row in rows} == {("software", None)}


def test_cli_without_server_explains_itself(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["devices", "list", "--state", str(tmp_path)])
    assert result.exit_code == 2
    assert "no-server" in result.output


def test_server_and_devices_list_as_separate_processes(tmp_path: Path) -> None:
    binary("mosquitto")
    state = tmp_path / "state"
    env = {**os.environ, "SEVENFOLD_STATE": str(state)}
    sevenfold = [sys.executable, "-m", "sevenfold.cli"]
    server = subprocess.Popen(
        [
            *sevenfold,
            "server",
            "--http-port",
            "0",
            "--broker-port",
            "0",
            "--broker-recovery-port",
            "0",
            "--no-attestation-gate",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while RuntimeInfo.read(state) is None:
            assert server.poll() is None, server.stdout.read() if server.stdout else ""
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.1)
        simulate = subprocess.run(
            [*sevenfold, "simulate", "--devices", "2", "--beats", "1", "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert simulate.returncode == 0, simulate.stdout + simulate.stderr
        listed = subprocess.run(
            [*sevenfold, "devices", "list", "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert listed.returncode == 0, listed.stderr
        assert [row["device_id"] for row in json.loads(listed.stdout)] == ["sim-0001", "sim-0002"]
    finally:
        server.terminate()
        server.wait(timeout=20)
    assert server.returncode == 0


def test_update_service_alone_needs_no_broker(tmp_path: Path) -> None:
    config = ServerConfig(state_dir=tmp_path, http_port=0, services=("updates",))
    metadata = tmp_path / "repository" / "metadata"
    metadata.mkdir(parents=True)
    (metadata / "root.json").write_text('{"signed": {}}')
    with FleetServer(config=config) as server:
        assert server.broker is None and server.gateway is None
        assert httpx.get(f"{server.http_url}/tuf/metadata/root.json").json() == {"signed": {}}
        assert httpx.get(f"{server.http_url}/tuf/metadata/..%2Fx.json").status_code in (400, 404)
        assert httpx.get(f"{server.http_url}/api/v1/devices").status_code == 404
