"""`sevenfold server --broker-listen / --broker-name`: devices on the network reach the fleet."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from device_runtime.simulator import BrokerAddress
from fleet_platform.server_config import RuntimeInfo, ServerConfig
from sevenfold.cli.app import app
from sevenfold.cli.simulate import run_fleet
from sevenfold.server import FleetServer
from tests.components import binary
from tests.network_addresses import device_side

NAME = "fleet.example.test"
EXTERNAL = ["--broker-host", "b.example", "--broker-ca", "ca.pem", "--cert", "c", "--key", "k"]


def test_devices_enroll_through_the_network_address_and_server_json_names_the_broker(
    tmp_path: Path,
) -> None:
    binary("mosquitto")
    side = device_side()
    config = ServerConfig(
        state_dir=tmp_path / "state",
        http_port=0,
        broker_port=0,
        recovery_port=0,
        attestation_gate=False,
        broker_listen=side.listen,
        broker_names=(NAME, side.address),
        heartbeat_interval=1,
    )
    with FleetServer(config=config) as fleet:
        assert fleet.broker is not None
        info = RuntimeInfo.read(config.state_dir)
        assert info is not None
        assert (info.broker_host, info.broker_port) == (NAME, fleet.broker.port)
        simulated = run_fleet(
            state=config.state_dir,
            broker=BrokerAddress(
                host=side.address,
                port=fleet.broker.port,
                ca_path=fleet.broker.ca_path,
                prefix="sevenfold",
            ),
            count=2,
            beats=1,
        )
        assert [d.error for d in simulated.devices] == [None, None]
        assert fleet.gateway is not None and fleet.gateway.health().ok


def test_every_interface_without_a_name_advertises_loopback(tmp_path: Path) -> None:
    binary("mosquitto")
    config = ServerConfig(
        state_dir=tmp_path / "state",
        http_port=0,
        broker_port=0,
        recovery_port=0,
        attestation_gate=False,
        broker_listen="0.0.0.0",
    )
    with FleetServer(config=config) as fleet:
        info = RuntimeInfo.read(config.state_dir)
        assert info is not None and info.broker_host == "127.0.0.1"
        assert fleet.broker is not None and fleet.broker.listen == "0.0.0.0"


def test_the_command_line_options_reach_the_broker_and_server_json(tmp_path: Path) -> None:
    binary("mosquitto")
    state = tmp_path / "state"
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "sevenfold.cli", "server", "--http-port", "0"),
            *(
                "--broker-port",
                "0",
                "--broker-recovery-port",
                "0",
                "--no-attestation-gate",
                "--broker-listen",
                "0.0.0.0",
            ),
            *("--broker-name", NAME, "--broker-name", "10.9.8.7"),
        ],
        env={**os.environ, "SEVENFOLD_STATE": str(state)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while (info := RuntimeInfo.read(state)) is None:
            assert server.poll() is None, server.stdout.read() if server.stdout else ""
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.1)
        assert info.broker_host == NAME
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=20)
    assert server.returncode == 0, output
    said = " ".join(output.split())  # the console wraps long lines
    assert "listening on 0.0.0.0" in said
    assert f"certificate for 127.0.0.1, localhost, {NAME}, 10.9.8.7" in said


@pytest.mark.parametrize(
    ("arguments", "reason"),
    [
        (["--broker-listen", "fleet.example.test"], "not an IP address"),
        (["--broker-listen", "224.0.0.1"], "multicast"),
        (["--broker-name", NAME, "--broker-name", "bad name"], "neither an IP address nor"),
        (["--broker-name", "*.example.test"], "neither an IP address nor"),
        (
            [*EXTERNAL, "--broker-listen", "0.0.0.0"],
            "configure the managed broker",
        ),
        (
            [*EXTERNAL, "--broker-name", NAME],
            "configure the managed broker",
        ),
    ],
)
def test_bad_broker_options_fail_before_anything_starts(
    tmp_path: Path, arguments: list[str], reason: str
) -> None:
    state = tmp_path / "state"
    result = CliRunner().invoke(app, ["server", "--state", str(state), *arguments])
    assert result.exit_code == 2, result.output
    assert reason in " ".join(result.output.replace("│", " ").split())
    assert not state.exists()
