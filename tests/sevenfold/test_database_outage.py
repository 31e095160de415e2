"""A fleet server on PostgreSQL loses its database to SIGKILL in the middle of heartbeats.

The cluster is the test's own (:mod:`tests.sevenfold.private_postgres`), so it
can be killed and started again on the same port and data directory. While it
is down every request must still be answered, with ``unavailable`` and a
``retry_after``, no gateway worker may die, and ``/healthz`` must name the
database; once it is back, heartbeats are acknowledged again and none that was
acknowledged before the kill was lost (the server answers only after commit).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from fleet_platform import api_tokens
from sevenfold.api_client import parse_prometheus
from sevenfold.cli.app import app
from sevenfold.server import FleetServer
from tests.sevenfold.cli.hostile_text import WIDE
from tests.sevenfold.private_postgres import PrivateCluster
from tests.sevenfold.resilience_support import (
    HeartbeatDriver,
    healthz,
    managed_fleet,
    probe_of,
    wait_until,
)

DEVICES = ("pg-dev-1", "pg-dev-2")


@pytest.fixture
def cluster() -> Iterator[PrivateCluster]:
    postgres = PrivateCluster()
    try:
        postgres.start()
        yield postgres
    finally:
        postgres.stop()


@pytest.fixture
def fleet(cluster: PrivateCluster, tmp_path: Path) -> Iterator[FleetServer]:
    with managed_fleet(tmp_path / "state", database_url=cluster.url) as server:
        yield server


def database_down(url: str) -> dict[str, object] | None:
    code, body = healthz(url)
    return body if code == 503 and not body["checks"]["database"]["ok"] else None


def internal_errors(fleet: FleetServer) -> float:
    token = api_tokens.read(fleet.config.state_dir)
    response = httpx.get(
        f"{fleet.http_url}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    return sum(
        sample.value
        for sample in parse_prometheus(response.text)
        if sample.name == "sevenfold_gateway_internal_errors_total"
    )


def test_postgres_killed_mid_traffic_is_answered_unavailable_and_loses_no_ack(
    cluster: PrivateCluster, fleet: FleetServer
) -> None:
    registry = fleet.registry
    assert registry is not None
    drivers = []
    for device_id in DEVICES:
        device = probe_of(fleet, device_id)
        device.enroll()
        drivers.append(HeartbeatDriver(device, timeout=5.0).start())
    try:
        wait_until(
            lambda: all(driver.acked_beyond(5) for driver in drivers),
            timeout=15,
            what="heartbeats to be acknowledged",
        )
        acked_before = [driver.traffic.last_acked for driver in drivers]
        killed_at = time.monotonic()
        cluster.kill()
        wait_until(
            lambda: all(driver.count("unavailable") >= 1 for driver in drivers),
            timeout=20,
            what="a first unavailable answer",
        )
        told_unavailable = max(driver.traffic.refusals[0][2] for driver in drivers) - killed_at
        wait_until(
            lambda: all(driver.count("unavailable") >= 2 for driver in drivers),
            timeout=20,
            what="devices to be told again, after their retry_after",
        )
        down = database_down(fleet.http_url)
        assert down is not None, healthz(fleet.http_url)
        checks = down["checks"]
        assert isinstance(checks, dict)
        assert checks["gateway"]["ok"], f"a gateway worker died: {checks['gateway']}"
        assert "does not answer" in checks["database"]["detail"]
        acked_during = [driver.traffic.last_acked for driver in drivers]
        shown = CliRunner().invoke(
            app, ["server", "status", "--state", str(fleet.config.state_dir)], env=WIDE
        )
        assert shown.exit_code == 1, shown.output
        assert "unhealthy (database)" in shown.stdout

        restarted_at = time.monotonic()
        cluster.start()
        wait_until(
            lambda: all(
                driver.acked_beyond(seq) for driver, seq in zip(drivers, acked_during, strict=True)
            ),
            timeout=20,
            what="heartbeats acknowledged after the restart",
        )
        served_again = time.monotonic() - restarted_at
        wait_until(
            lambda: healthz(fleet.http_url)[0] == 200, timeout=10, what="/healthz to say 200"
        )
    finally:
        traffic = [driver.stop() for driver in drivers]
        for driver in drivers:
            driver.device.close()

    for device_id, seen, before in zip(DEVICES, traffic, acked_before, strict=True):
        refusals = {code for code, _, _ in seen.refusals}
        assert refusals == {"unavailable"}, f"{device_id} was refused with {seen.refusals}"
        waits = [retry for _, retry, _ in seen.refusals]
        assert all(isinstance(wait, int) and wait > 0 for wait in waits), waits
        assert seen.silences == 0, f"{device_id}: {seen.silences} requests went unanswered"
        record = registry.get(device_id)
        assert record is not None and record.last_seq is not None
        assert record.last_seq >= seen.last_acked >= before, (
            f"{device_id}: stored seq {record.last_seq} is behind the acknowledged"
            f" {seen.last_acked}"
        )
    assert internal_errors(fleet) == 0
    print(
        f"postgres kill: devices told unavailable within {told_unavailable:.2f}s,"
        f" heartbeats acknowledged {served_again:.2f}s after the restart began"
    )


def test_operator_api_says_503_while_postgres_is_down(
    cluster: PrivateCluster, fleet: FleetServer
) -> None:
    token = api_tokens.read(fleet.config.state_dir)
    devices = f"{fleet.http_url}/api/v1/devices"
    headers = {"Authorization": f"Bearer {token}"}
    assert httpx.get(devices, headers=headers, timeout=10).status_code == 200
    cluster.kill()
    wait_until(lambda: database_down(fleet.http_url), timeout=10, what="/healthz to say 503")
    during = httpx.get(devices, headers=headers, timeout=30)
    assert during.status_code == 503, during.text
    assert "storage unavailable" in during.json()["detail"]
