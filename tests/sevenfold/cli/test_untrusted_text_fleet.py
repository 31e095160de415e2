"""The operator's fleet commands against a real server whose database holds hostile values.

Devices are written straight into the running server's registry: the wire
protocol may refuse such values on the way in, but rows stored by an older
version, a migration or a future path must still be shown safely. Legacy
assets and alerts arrive the way a sensor sends them, through the sensor REST
routes with the sensor token.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from typer.testing import CliRunner, Result

from fleet_platform import api_tokens
from fleet_platform.server_config import ServerConfig
from passive_monitor.alerts.model import Alert
from sevenfold.cli.app import app
from sevenfold.cli.output import show
from sevenfold.cli.tables import alert_table
from sevenfold.server import FleetServer
from tests.components import binary
from tests.sevenfold.cli.hostile_text import (
    HOSTILE,
    LONG,
    SHOWN,
    WIDE,
    assert_harmless,
    row_showing,
    shown,
)

runner = CliRunner()

SITE = "plant-a"
AT_THE_LIMIT = "M" * 256
"""The longest text the sensor routes accept in an asset or an alert title."""

SENSOR_VALUES = (*SHOWN, AT_THE_LIMIT)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FleetServer]:
    binary("mosquitto")
    state = tmp_path_factory.mktemp("hostile") / "state"
    config = ServerConfig(
        state_dir=state, http_port=0, broker_port=0, recovery_port=0, attestation_gate=False
    )
    with FleetServer(config=config) as server:
        _store_hostile_devices(server)
        _send_hostile_site(server)
        yield server


def _store_hostile_devices(server: FleetServer) -> None:
    registry = server.registry
    assert registry is not None
    now = datetime.now(UTC)
    for value in HOSTILE:
        registry.enroll(
            value,
            hwmodel=value,
            swname=value,
            swversion=value,
            rot_claimed="software",
            boot_count=1,
            heartbeat_interval=3600,
            cert_fingerprint=None,
            now=now,
        )
        registry.record_event(device_id=value, kind=value, code=value, reason=value, now=now)


def _send_hostile_site(server: FleetServer) -> None:
    sensor = {"Authorization": f"Bearer {_token(server, api_tokens.SENSOR)}"}
    assets = [
        {
            "ip": f"10.0.0.{number}",
            "mac_vendor": value,
            "vendor": value,
            "product": value,
            "model": value,
            "firmware": value,
            "serial": value,
            "name": value,
        }
        for number, value in enumerate(SENSOR_VALUES, 1)
    ]
    alerts = [
        {
            "id": f"PM-{number:016x}",
            "rule": "write-from-new-client",
            "engine": "policy",
            "severity": "high",
            "title": value,
            "description": value,
            "function": value,
            "count": 1,
            "first_seen": 1.0,
            "last_seen": 2.0,
        }
        for number, value in enumerate(SENSOR_VALUES, 1)
    ]
    base = f"{server.http_url}/api/v1/sites/{SITE}"
    put = httpx.put(f"{base}/assets", json={"assets": assets}, headers=sensor)
    assert put.status_code == 200, put.text
    posted = httpx.post(f"{base}/alerts", json={"alerts": alerts}, headers=sensor)
    assert posted.status_code == 200, posted.text


def _token(server: FleetServer, name: str) -> str:
    token = api_tokens.read(server.config.state_dir, name=name)
    assert token is not None
    return token


def sevenfold(fleet: FleetServer, *args: str) -> Result:
    result = runner.invoke(app, [*args, "--state", str(fleet.config.state_dir)], env=WIDE)
    assert result.exit_code == 0, result.output
    return result


def test_devices_list_shows_device_values_as_text(fleet: FleetServer) -> None:
    out = sevenfold(fleet, "devices", "list").stdout
    assert_harmless(out)
    for value in HOSTILE:
        row = row_showing(out, value, times=2)  # device id and firmware
        assert " online " in row.replace(shown(value), "")


def test_a_long_value_does_not_squeeze_other_columns_out_of_a_narrow_table(
    fleet: FleetServer,
) -> None:
    result = runner.invoke(
        app, ["devices", "list", "--state", str(fleet.config.state_dir)], env={"COLUMNS": "80"}
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert sum("│ online │" in line for line in lines) == len(HOSTILE)


def test_devices_json_keeps_the_exact_values(fleet: FleetServer) -> None:
    rows = json.loads(sevenfold(fleet, "devices", "list", "--json").stdout)
    assert {row["device_id"] for row in rows} == set(HOSTILE)
    assert all(row["swversion"] == row["device_id"] for row in rows)


def test_devices_events_show_every_column_as_text(fleet: FleetServer) -> None:
    out = sevenfold(fleet, "devices", "events", "--limit", "100").stdout
    assert_harmless(out)
    for value in HOSTILE:
        row_showing(out, value, times=4)  # device, kind, code, reason
    for value in SHOWN:
        # The enrollment reason joins model, software name and version.
        assert (
            f"root of trust (claimed), {shown(value)} running {shown(value)} {shown(value)}" in out
        )


def test_inventory_shows_devices_and_legacy_assets_as_text(fleet: FleetServer) -> None:
    out = sevenfold(fleet, "inventory").stdout
    assert_harmless(out)
    managed = "\n".join(line for line in out.splitlines() if line.startswith("│ yes "))
    legacy = "\n".join(line for line in out.splitlines() if line.startswith("│ no "))
    for value in SHOWN:
        row_showing(managed, value, times=3)  # name, model, software name and version
    row_showing(managed, LONG, times=1)  # the identity joins three of it, cut as one
    for value in SENSOR_VALUES:
        row_showing(legacy, value, times=4)  # name, vendor, product, firmware


def test_alerts_the_server_stored_render_as_text(
    fleet: FleetServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    operator = {"Authorization": f"Bearer {_token(fleet, api_tokens.OPERATOR)}"}
    views = httpx.get(f"{fleet.http_url}/api/v1/alerts", headers=operator).json()
    alerts = [Alert.from_dict(view["alert"]) for view in views]
    assert {alert.title for alert in alerts} == set(SENSOR_VALUES)
    for name, value in WIDE.items():
        monkeypatch.setenv(name, value)
    show(alert_table(alerts))
    out = capsys.readouterr().out
    assert_harmless(out)
    for value in SHOWN:
        row_showing(out, value, times=1)
    assert AT_THE_LIMIT in out


def test_the_sensor_routes_refuse_text_longer_than_their_limit(fleet: FleetServer) -> None:
    """Which is why a 10,000-character value reaches the tables only from the registry."""
    sensor = {"Authorization": f"Bearer {_token(fleet, api_tokens.SENSOR)}"}
    body = {"assets": [{"ip": "10.9.9.9", "vendor": LONG}]}
    put = httpx.put(f"{fleet.http_url}/api/v1/sites/{SITE}/assets", json=body, headers=sensor)
    assert put.status_code == 422
