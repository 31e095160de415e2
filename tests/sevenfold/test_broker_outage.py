"""A whole fleet server loses its managed mosquitto to SIGKILL while devices are beating.

What must hold: ``/healthz`` says unhealthy (503, the broker check failing)
for as long as the broker is down, and healthy again once the supervisor has
relaunched it on the same port and the gateway has reconnected; the port the
server recorded for devices is still the one the broker listens on; and the
devices, which reconnect and subscribe again by themselves (the agents that
``sevenfold simulate`` runs, and a device speaking the protocol directly), have
their heartbeats answered again and finish every beat they were asked for.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from device_runtime.core import protocol
from device_runtime.simulator import BrokerAddress, SimulatedFleet
from fleet_platform.pki import fleet_authority
from fleet_platform.server_config import RuntimeInfo
from sevenfold.server import FleetServer
from tests.sevenfold.resilience_support import (
    HeartbeatDriver,
    check_ok,
    healthz,
    managed_fleet,
    probe_of,
    wait_until,
)

SIMULATED_BEATS = 8
"""Beats each simulated device must have acknowledged, some before and some after the kill;
the agent keeps at it through any outage, so a bounded number is what lets it finish."""

RECOVERY_BOUND_S = 20.0
"""Supervisor back-off (0.5 s) + mosquitto start + the gateway's reconnect delay (1 s, up to
5 s), with a wide margin for a loaded CI machine."""


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[FleetServer]:
    with managed_fleet(tmp_path / "state") as server:
        yield server


def address(fleet: FleetServer) -> BrokerAddress:
    info = RuntimeInfo.read(fleet.config.state_dir)
    assert info is not None and info.broker_host and info.broker_port and info.ca_path
    return BrokerAddress(
        host=info.broker_host, port=info.broker_port, ca_path=Path(info.ca_path), prefix=info.prefix
    )


def simulated(fleet: FleetServer, count: int, beats: int) -> SimulatedFleet:
    """Devices like ``sevenfold simulate`` runs, left running once each has beaten twice."""
    state = fleet.config.state_dir
    authority = fleet_authority(state)
    devices = SimulatedFleet(
        directory=state / "devices",
        broker=address(fleet),
        certify=lambda csr, device_id: authority.sign_csr(
            csr, required_common_name=protocol.check_device_id(device_id)
        ),
        count=count,
    )
    devices.provision()
    devices.start(beats=beats)
    wait_until(
        lambda: all(device.beats >= 2 for device in devices.devices),
        timeout=30,
        what="the simulated devices to beat",
    )
    return devices


def kill_broker(fleet: FleetServer) -> tuple[int, float]:
    broker = fleet.broker
    assert broker is not None
    pid = broker.pid
    assert pid is not None and broker.running
    os.kill(pid, signal.SIGKILL)
    return pid, time.monotonic()


def broker_down(url: str) -> dict[str, object] | None:
    code, body = healthz(url)
    if code == 503 and body["status"] == "unhealthy" and not body["checks"]["broker"]["ok"]:
        return body
    return None


def healthy(url: str) -> dict[str, object] | None:
    code, body = healthz(url)
    return body if code == 200 and body["status"] == "ok" else None


def test_server_recovers_from_a_killed_broker_on_the_same_port(fleet: FleetServer) -> None:
    supervisor = fleet.supervisor
    assert supervisor is not None
    port = fleet.config.broker_port
    running = simulated(fleet, count=2, beats=SIMULATED_BEATS)
    device = probe_of(fleet, "outage-dev")
    device.enroll()
    beats = HeartbeatDriver(device, reconnect=True).start()
    wait_until(lambda: beats.acked_beyond(3), timeout=10, what="the probe's heartbeats")

    at_kill = [d.beats for d in running.devices]
    acked_at_kill = beats.traffic.last_acked
    old_pid, killed_at = kill_broker(fleet)
    down = wait_until(lambda: broker_down(fleet.http_url), timeout=5, what="/healthz to say 503")
    noticed = time.monotonic() - killed_at
    checks = down["checks"]
    assert isinstance(checks, dict)
    assert checks["database"]["ok"], "the database has nothing to do with the broker"

    wait_until(lambda: healthy(fleet.http_url), timeout=RECOVERY_BOUND_S, what="healthy again")
    recovered = time.monotonic() - killed_at
    broker = supervisor.health()
    assert broker.ok and broker.restarts == 1 and broker.pid not in (None, old_pid)
    assert fleet.broker is not None and fleet.broker.port == port
    info = RuntimeInfo.read(fleet.config.state_dir)
    assert info is not None and info.broker_port == port, "devices are told the port it is on"
    assert check_ok(fleet.http_url, "gateway"), "the gateway reconnected"

    # Every device reconnects by itself: the simulated agents and the probe alike.
    wait_until(
        lambda: (
            beats.acked_beyond(acked_at_kill + 2)
            and all(d.beats > n for d, n in zip(running.devices, at_kill, strict=True))
        ),
        timeout=RECOVERY_BOUND_S,
        what="heartbeats answered after the devices reconnected",
    )
    served_again = time.monotonic() - killed_at
    traffic = beats.stop()
    device.close()
    assert traffic.codes["internal"] == 0
    assert running.wait(SIMULATED_BEATS * 5.0), "the simulated devices did not finish"
    assert [(d.error, d.beats) for d in running.devices] == [(None, SIMULATED_BEATS)] * 2
    print(
        f"broker kill: /healthz 503 after {noticed:.2f}s, healthy after {recovered:.2f}s,"
        f" every device answered again after {served_again:.2f}s"
    )
