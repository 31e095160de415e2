"""A whole fleet server (managed broker, every service) for command-line tests to talk to."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fleet_platform.server_config import ServerConfig
from sevenfold.server import FleetServer
from tests.components import binary


def running_fleet(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[FleetServer]:
    """Started in a fresh state directory named after *name*; stopped when the caller ends."""
    binary("mosquitto")
    state = tmp_path_factory.mktemp(name) / "state"
    config = ServerConfig(state_dir=state, http_port=0, broker_port=0, recovery_port=0)
    with FleetServer(config=config) as server:
        yield server
