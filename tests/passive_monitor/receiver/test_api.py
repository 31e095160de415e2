"""The fleet server's monitor service over real HTTP: sensor uploads, operator views, hostility."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from device_runtime.simulator import BrokerAddress
from fleet_platform import api_tokens
from fleet_platform.server_config import ServerConfig
from passive_monitor.alerts.engine import Detector
from passive_monitor.alerts.model import Alert
from passive_monitor.baseline import Baseline
from passive_monitor.inventory import Asset, InventoryBuilder
from passive_monitor.receiver.api import MAX_BODY_BYTES
from passive_monitor.sensor import Sensor
from sevenfold.cli.simulate import run_fleet
from sevenfold.server import FleetServer
from tests.components import binary
from tests.passive_monitor.shared_captures import capture

ASSETS = "/api/v1/sites/plant-a/assets"
ALERTS = "/api/v1/sites/plant-a/alerts"


@dataclass(frozen=True)
class Monitor:
    server: FleetServer
    url: str
    operator: dict[str, str]
    sensor: dict[str, str]


@dataclass(frozen=True)
class Site:
    assets: list[dict[str, Any]]
    alerts: list[dict[str, Any]]


def _bearer(token: str | None) -> dict[str, str]:
    assert token is not None
    return {"Authorization": f"Bearer {token}"}


def _monitor(server: FleetServer) -> Monitor:
    state = server.config.state_dir
    return Monitor(
        server=server,
        url=server.http_url,
        operator=_bearer(api_tokens.read(state)),
        sensor=_bearer(api_tokens.read(state, name=api_tokens.SENSOR)),
    )


def observe(path: Path) -> Site:
    """What the passive monitor reports after a capture: its inventory and its alerts."""
    sensor = Sensor()
    builder = InventoryBuilder()
    detector = Detector(baseline=Baseline(), learn_frames=20)
    for observation in sensor.observe_file(path):
        builder.observe(observation)
        detector.observe(observation)
    return Site(
        assets=[asset.to_dict() for asset in builder.snapshot().assets],
        alerts=[alert.to_dict() for alert in detector.alerts],
    )


@pytest.fixture(scope="module")
def monitor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Monitor]:
    config = ServerConfig(
        state_dir=tmp_path_factory.mktemp("monitor"), http_port=0, services=("monitor",)
    )
    with FleetServer(config=config) as server:
        yield _monitor(server)


@pytest.fixture(scope="module")
def plant() -> Site:
    modbus = observe(capture("modbus", "modbus_test_data_part1.pcap"))
    s7 = observe(capture("s7comm", "s7ident.pcap"))
    assert modbus.alerts and s7.assets
    return Site(assets=modbus.assets + s7.assets, alerts=modbus.alerts + s7.alerts)


def test_monitor_service_alone_needs_no_broker(monitor: Monitor) -> None:
    server = monitor.server
    assert server.broker is None and server.gateway is None
    state = server.config.state_dir
    for name in api_tokens.TOKEN_NAMES:
        assert (state / api_tokens.token_file(name)).stat().st_mode & 0o777 == 0o600
    assert monitor.operator != monitor.sensor
    assert httpx.get(f"{monitor.url}/api/v1/devices", headers=monitor.operator).status_code == 404
    paths = httpx.get(f"{monitor.url}/openapi.json").json()["paths"]
    assert {"/api/v1/sites/{site}/assets", "/api/v1/sites/{site}/alerts"} <= set(paths)
    assert {"/api/v1/assets", "/api/v1/alerts", "/api/v1/inventory"} <= set(paths)


def test_captured_site_is_stored_and_shown_to_operators(monitor: Monitor, plant: Site) -> None:
    url = monitor.url
    put = httpx.put(f"{url}{ASSETS}", json={"assets": plant.assets}, headers=monitor.sensor)
    assert put.status_code == 200, put.text
    assert put.json() == {"site": "plant-a", "accepted": len(plant.assets)}
    posted = httpx.post(f"{url}{ALERTS}", json={"alerts": plant.alerts}, headers=monitor.sensor)
    assert posted.json() == {"site": "plant-a", "accepted": len(plant.alerts)}

    views = httpx.get(f"{url}/api/v1/assets?site=plant-a", headers=monitor.operator).json()
    assert {view["ip"] for view in views} == {asset["ip"] for asset in plant.assets}
    by_ip = {asset["ip"]: asset for asset in plant.assets}
    for view in views:
        assert view["managed"] is False
        assert Asset.from_dict(view["asset"]) == Asset.from_dict(by_ip[view["ip"]])
    siemens = next(view for view in views if view["vendor"] == "Siemens")
    assert siemens["firmware"] == "V3.2.6" and siemens["protocols"] == ["s7comm"]

    # The sensor resends its whole view: rows are refreshed, never duplicated.
    httpx.post(f"{url}{ALERTS}", json={"alerts": plant.alerts}, headers=monitor.sensor)
    stored = httpx.get(f"{url}/api/v1/alerts?limit=1000", headers=monitor.operator).json()
    assert sorted(view["alert_id"] for view in stored) == sorted(a["id"] for a in plant.alerts)
    counts = {alert["id"]: alert["count"] for alert in plant.alerts}
    assert {view["alert_id"]: view["count"] for view in stored} == counts
    for view in stored:
        assert Alert.from_dict(view["alert"]) == Alert.from_dict(
            next(a for a in plant.alerts if a["id"] == view["alert_id"])
        )

    inventory = httpx.get(f"{url}/api/v1/inventory", headers=monitor.operator).json()
    legacy = [item for item in inventory if item["site"] == "plant-a"]
    assert {item["ip"] for item in legacy} == set(by_ip)
    assert {item["managed"] for item in legacy} == {False}


ROUTES: list[tuple[str, str, Any, str]] = [
    ("PUT", ASSETS, {"assets": []}, "sensor"),
    ("POST", ALERTS, {"alerts": []}, "sensor"),
    ("GET", "/api/v1/assets", None, "operator"),
    ("GET", "/api/v1/alerts", None, "operator"),
    ("GET", "/api/v1/inventory", None, "operator"),
]


@pytest.mark.parametrize(("method", "path", "body", "owner"), ROUTES)
def test_each_route_admits_only_its_own_token(
    monitor: Monitor, method: str, path: str, body: Any, owner: str
) -> None:
    own = monitor.sensor if owner == "sensor" else monitor.operator
    other = monitor.operator if owner == "sensor" else monitor.sensor
    for headers in ({}, other, {"Authorization": "Bearer " + "x" * 43}, {"Authorization": "x"}):
        refused = httpx.request(method, f"{monitor.url}{path}", json=body, headers=headers)
        assert refused.status_code == 401
        assert refused.json()["detail"] == f"missing or wrong {owner} token"
    assert httpx.request(method, f"{monitor.url}{path}", json=body, headers=own).status_code == 200


def test_token_is_checked_before_a_body_is_read(monitor: Monitor) -> None:
    garbage = b"{" * (1 << 20)
    refused = httpx.put(f"{monitor.url}{ASSETS}", content=garbage, headers=monitor.operator)
    assert refused.status_code == 401


GOOD_ASSET = {"ip": "10.1.2.3", "roles": {"modbus": ["server"]}, "vendor": "Schneider Electric"}
GOOD_ALERT = {
    "id": "PM-0123456789abcdef",
    "rule": "new-function",
    "engine": "policy",
    "severity": "medium",
    "title": "Unlearned Modbus function",
    "count": 2,
    "first_seen": 1.0,
    "last_seen": 2.0,
}


@pytest.mark.parametrize(
    ("path", "body", "status", "reason"),
    [
        (ASSETS, {"assets": [{**GOOD_ASSET, "ip": "10.1.2.300"}]}, 422, "not an IP address"),
        (ASSETS, {"assets": [{**GOOD_ASSET, "ip": "plc.example"}]}, 422, "not an IP address"),
        (ASSETS, {"assets": [{**GOOD_ASSET, "ip": 167838211}]}, 422, "valid string"),
        (ASSETS, {"assets": [{"vendor": "x"}]}, 422, "Field required"),
        (ASSETS, {"assets": [{**GOOD_ASSET, "vendor": "v" * 257}]}, 422, "at most 256"),
        (ASSETS, {"assets": [{**GOOD_ASSET, "roles": {"a,b": ["server"]}}]}, 422, "pattern"),
        (ASSETS, {"assets": [{**GOOD_ASSET, "roles": ["modbus"]}]}, 422, "dictionary"),
        (ASSETS, {"assets": [{**GOOD_ASSET, "purdue_level": 9}]}, 422, "less than or equal to 5"),
        (ASSETS, {"assets": [{**GOOD_ASSET, "device_instance": "7"}]}, 422, "valid integer"),
        (ASSETS, {"assets": [{**GOOD_ASSET, "first_seen": -1}]}, 422, "greater than or equal to 0"),
        (ASSETS, {"assets": [{**GOOD_ASSET, "macs": ["zz"] * 3}]}, 422, "pattern"),
        (ASSETS, {"assets": {"ip": "10.1.2.3"}}, 422, "list"),
        (ASSETS, {"assets": [], "extra": 1}, 422, "Extra inputs"),
        (ASSETS, [GOOD_ASSET], 422, "body"),
        (ASSETS, {"assets": [{"ip": "10.0.0.1"}] * 10_001}, 422, "at most 10000"),
        (ALERTS, {"alerts": [{**GOOD_ALERT, "engine": "ransomware"}]}, 422, "'anomaly'"),
        (ALERTS, {"alerts": [{**GOOD_ALERT, "severity": "urgent"}]}, 422, "'critical'"),
        (ALERTS, {"alerts": [{**GOOD_ALERT, "count": 0}]}, 422, "greater than or equal to 1"),
        (ALERTS, {"alerts": [{**GOOD_ALERT, "count": 2**63}]}, 422, "less than or equal to"),
        (ALERTS, {"alerts": [{**GOOD_ALERT, "count": True}]}, 422, "valid integer"),
        (ALERTS, {"alerts": [{**GOOD_ALERT, "id": "../../etc"}]}, 422, "pattern"),
        (ALERTS, {"alerts": [{**GOOD_ALERT, "title": ""}]}, 422, "at least 1 character"),
        (ALERTS, {"alerts": [{**GOOD_ALERT, "client": {"ip": "nope"}}]}, 422, "not an IP address"),
        (
            ALERTS,
            {"alerts": [{**GOOD_ALERT, "server": {"ip": "::1", "port": 70000}}]},
            422,
            "65535",
        ),
        (ALERTS, {"alerts": [{**GOOD_ALERT, "evidence": [{"frame": 1}] * 65}]}, 422, "at most 64"),
        ("/api/v1/sites/Plant-A/assets", {"assets": []}, 422, "site"),
        ("/api/v1/sites/-plant/alerts", {"alerts": []}, 422, "site"),
        (f"/api/v1/sites/{'s' * 64}/assets", {"assets": []}, 422, "site"),
        ("/api/v1/sites/plant%2F..%2Fx/assets", {"assets": []}, 404, "Not Found"),
    ],
)
def test_hostile_bodies_are_refused_with_a_reason(
    monitor: Monitor, path: str, body: Any, status: int, reason: str
) -> None:
    method = "PUT" if path.endswith("/assets") else "POST"
    response = httpx.request(method, f"{monitor.url}{path}", json=body, headers=monitor.sensor)
    assert response.status_code == status, response.text
    assert reason in response.text
    assert len(response.content) < 4096, "a rejection must not echo the hostile input"


@pytest.mark.parametrize(
    ("content", "status", "reason"),
    [
        (b'{"assets": [{"ip": "10.0.0.1", "first_seen": NaN}]}', 400, "NaN is not a JSON number"),
        (b'{"assets": [{"ip": "10.0.0.1", "last_seen": Infinity}]}', 400, "Infinity"),
        (b"[" * 100_000 + b"]" * 100_000, 400, "nested too deeply"),
        (b'{"assets": [', 422, "JSON decode error"),
        (b'{"assets": ["\xff"]}', 400, "not UTF-8"),
        (b" " * (MAX_BODY_BYTES + 1), 413, "body larger than"),
    ],
)
def test_malformed_json_is_refused_with_a_reason(
    monitor: Monitor, content: bytes, status: int, reason: str
) -> None:
    headers = {**monitor.sensor, "Content-Type": "application/json"}
    response = httpx.put(f"{monitor.url}{ASSETS}", content=content, headers=headers)
    assert response.status_code == status, response.text
    assert reason in response.text


def test_oversized_body_is_refused_before_it_is_read(monitor: Monitor) -> None:
    """A declared length over the cap is refused at once; the server does not wait for it."""
    address = urlsplit(monitor.url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as connection:
        request = (
            f"PUT {ASSETS} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Authorization: {monitor.sensor['Authorization']}\r\n"
            f"Content-Length: {MAX_BODY_BYTES * 4}\r\n\r\n{{"
        )
        connection.sendall(request.encode())
        answer = connection.recv(4096).decode()
    assert answer.startswith("HTTP/1.1 413"), answer


def test_streamed_body_is_cut_off_at_the_cap(monitor: Monitor) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(MAX_BODY_BYTES // 65536 + 2):
            yield b" " * 65536

    headers = {**monitor.sensor, "Content-Type": "application/json"}
    response = httpx.put(f"{monitor.url}{ASSETS}", content=chunks(), headers=headers)
    assert response.status_code == 413


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
asset_fields = st.fixed_dictionaries(
    {"ip": st.one_of(st.ip_addresses().map(str), json_values)},
    optional={
        key: json_values
        for key in ("macs", "roles", "services", "vendor", "device_instance", "first_seen")
    },
)
alert_fields = st.fixed_dictionaries(
    {
        key: st.one_of(st.just(value), json_values)
        for key, value in GOOD_ALERT.items()
        if key != "id"
    }
    | {"id": st.text(max_size=70)},
    optional={"client": json_values, "evidence": json_values},
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    site=st.text(max_size=70) | st.just("plant-h"),
    assets=st.lists(asset_fields, max_size=5),
    alerts=st.lists(alert_fields, max_size=5),
)
def test_arbitrary_bodies_never_crash_the_server(
    monitor: Monitor, site: str, assets: list[Any], alerts: list[Any]
) -> None:
    with httpx.Client(base_url=monitor.url, headers=monitor.sensor, timeout=30) as client:
        quoted = "/api/v1/sites/" + quote(site, safe="")
        for method, path, body in (
            ("PUT", f"{quoted}/assets", {"assets": assets}),
            ("POST", f"{quoted}/alerts", {"alerts": alerts}),
        ):
            response = client.request(method, path, content=json.dumps(body))
            assert response.status_code in (200, 400, 404, 405, 422), response.text
            if response.status_code != 200:
                assert response.json()["detail"]
        listed = client.get("/api/v1/inventory", headers=monitor.operator)
        assert listed.status_code == 200


def test_inventory_lists_managed_devices_beside_legacy_gear(tmp_path: Path) -> None:
    binary("mosquitto")
    config = ServerConfig(
        state_dir=tmp_path / "state",
        http_port=0,
        broker_port=0,
        recovery_port=0,
        attestation_gate=False,  # its simulated devices hold fleet certificates, unattested
        services=("attestation", "monitor"),
    )
    with FleetServer(config=config) as server:
        monitor = _monitor(server)
        assert server.broker is not None
        fleet = run_fleet(
            state=config.state_dir,
            broker=BrokerAddress(
                host=server.broker.host,
                port=server.broker.port,
                ca_path=server.broker.ca_path,
                prefix=config.prefix,
            ),
            count=1,
            beats=1,
        )
        assert [device.error for device in fleet.devices] == [None]
        legacy = {"ip": "192.168.10.20", "vendor": "Rockwell Automation/Allen-Bradley"}
        put = httpx.put(
            f"{monitor.url}/api/v1/sites/line-3/assets",
            json={"assets": [legacy]},
            headers=monitor.sensor,
        )
        assert put.status_code == 200
        inventory = httpx.get(f"{monitor.url}/api/v1/inventory", headers=monitor.operator).json()
    assert [(item["managed"], item["name"], item["site"]) for item in inventory] == [
        (True, "sim-0001", None),
        (False, "192.168.10.20", "line-3"),
    ]
    assert inventory[0]["status"] == "online" and inventory[0]["protocols"] == ["mqtt"]
    assert inventory[1]["vendor"] == legacy["vendor"] and inventory[1]["status"] is None
