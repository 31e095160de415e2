"""The monitor command line end to end: forward to a fleet server, learn an alert away."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fleet_platform.server_config import ServerConfig
from sevenfold.cli.app import app
from sevenfold.server import FleetServer
from tests.components import shared_dir

runner = CliRunner()


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[FleetServer]:
    config = ServerConfig(state_dir=tmp_path / "state", http_port=0, services=("monitor",))
    with FleetServer(config=config) as server:
        yield server


def monitor(*args: str) -> dict[str, object]:
    result = runner.invoke(app, ["monitor", *args, "--json"])
    assert result.exit_code == 0, result.output
    summary: dict[str, object] = json.loads(result.stdout)
    return summary


def test_forwarded_assets_appear_in_the_fleet_inventory(fleet: FleetServer) -> None:
    capture = shared_dir("pcaps") / "modbus" / "modbus_example.pcap"
    state = str(fleet.config.state_dir)
    summary = monitor("--pcap", str(capture), "--forward-state", state, "--site", "plant-a")
    forwarded = summary["forwarded"]
    assert isinstance(forwarded, dict) and forwarded["assets"] > 0
    listed = runner.invoke(app, ["inventory", "--state", state, "--json"])
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.stdout)
    legacy = [row for row in rows if not row["managed"]]
    assert legacy and {row["site"] for row in legacy} == {"plant-a"}
    assert {row["ip"] for row in legacy} == {a["ip"] for a in summary["assets"]}  # type: ignore[union-attr,index]


def test_forwarding_needs_a_token(tmp_path: Path) -> None:
    capture = shared_dir("pcaps") / "modbus" / "modbus_example.pcap"
    result = runner.invoke(
        app, ["monitor", "--pcap", str(capture), "--forward", "http://127.0.0.1:9"]
    )
    assert result.exit_code == 2
    assert "--sensor-token-file" in result.output


def test_learn_this_silences_the_alert(tmp_path: Path) -> None:
    capture = shared_dir("pcaps") / "s7comm" / "snap7.pcap"
    baseline, alerts = tmp_path / "baseline.json", tmp_path / "alerts.jsonl"
    first = monitor(
        "--pcap",
        str(capture),
        "--baseline",
        str(baseline),
        "--learn-packets",
        "10",
        "--jsonl",
        str(alerts),
    )
    raised = first["alerts"]
    assert isinstance(raised, list) and raised
    chosen = raised[0]["id"]
    learned = runner.invoke(
        app, ["baseline", "learn", chosen, "--baseline", str(baseline), "--alerts", str(alerts)]
    )
    assert learned.exit_code == 0, learned.output
    again = monitor("--pcap", str(capture), "--baseline", str(baseline))
    assert chosen not in {alert["id"] for alert in again["alerts"]}  # type: ignore[union-attr]


def test_learning_an_unknown_alert_is_a_clear_error(tmp_path: Path) -> None:
    baseline, alerts = tmp_path / "baseline.json", tmp_path / "alerts.jsonl"
    baseline.write_text("{}")
    alerts.write_text("")
    result = runner.invoke(
        app, ["baseline", "learn", "nope", "--baseline", str(baseline), "--alerts", str(alerts)]
    )
    assert result.exit_code == 2
    assert "no alert nope" in result.output
