"""The attestation server's REST routes on their own: token, views, claims shown as claims."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from attestation_server import api
from attestation_server.registry import DeviceRegistry
from fleet_platform.bearer_auth import bearer_dependency
from fleet_platform.storage import Database

TOKEN = "t" * 43
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def registry(database: Database) -> DeviceRegistry:
    return DeviceRegistry(database=database)


@pytest.fixture
def client(registry: DeviceRegistry) -> Iterator[httpx.Client]:
    """The routes behind a real HTTP server on a free loopback port."""
    app = FastAPI()
    app.include_router(api.router(registry=registry, authorized=bearer_dependency(TOKEN)))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the API did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers) as client:
        yield client
    server.should_exit = True
    thread.join(timeout=10)


def test_devices_need_the_operator_token(client: httpx.Client) -> None:
    for path in ("/api/v1/devices", "/api/v1/devices/dev-1", "/api/v1/events"):
        assert client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_a_device_shows_its_claimed_root_of_trust_as_unverified(
    client: httpx.Client, registry: DeviceRegistry
) -> None:
    """A software device that says ``tpm`` is listed with that claim and nothing verified."""
    registry.enroll(
        "dev-1", hwmodel="board", swname="fw", swversion="1.0.0", rot_claimed="tpm",
        boot_count=1, heartbeat_interval=30, now=NOW,
    )  # fmt: skip
    [listed] = client.get("/api/v1/devices").json()
    assert (listed["rot_claimed"], listed["rot_verified"]) == ("tpm", None)
    assert "rot" not in listed
    assert client.get("/api/v1/devices/dev-1").json() == listed


def test_an_unknown_device_is_404_and_events_are_bounded(client: httpx.Client) -> None:
    assert client.get("/api/v1/devices/nobody").status_code == 404
    assert client.get("/api/v1/events", params={"limit": 0}).status_code == 422
    assert client.get("/api/v1/events", params={"limit": 1001}).status_code == 422
    assert client.get("/api/v1/events").json() == []
