"""A real fleet server with the attestation gate on, and its operator API.

The server trusts a manufacturer CA made by the factory station's ``init_ca``
(the one its recovery listener admits boards by), runs its managed Mosquitto
with both listeners on free ports and asks for a heartbeat every second, so
end-to-end attestation tests see a board earn its topics within seconds.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from fleet_platform import api_tokens
from fleet_platform.pki import CertificateAuthority
from fleet_platform.server_config import ServerConfig
from sevenfold.factory_station import init_ca
from sevenfold.server import FleetServer
from tests.components import binary

GatedFleet = tuple[FleetServer, ServerConfig, CertificateAuthority]


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[GatedFleet]:
    """(server, its configuration, the manufacturer CA it trusts), gate on."""
    with gated_fleet(tmp_path) as running:
        yield running


@contextmanager
def gated_fleet(directory: Path) -> Iterator[GatedFleet]:
    """:func:`fleet` in *directory*, for fixtures of a wider scope that share one server."""
    binary("mosquitto")
    maker = init_ca(directory / "maker")
    config = ServerConfig(
        state_dir=directory / "state",
        http_port=0,
        broker_port=0,
        recovery_port=0,
        heartbeat_interval=1,
        manufacturer_cas=(maker.cert_path,),
    )
    with FleetServer(config=config) as server:
        yield server, config, maker


def operator_api(server: FleetServer, config: ServerConfig) -> httpx.Client:
    """An HTTP client with the operator's token; the caller closes it."""
    token = api_tokens.read(config.state_dir)
    return httpx.Client(
        base_url=server.http_url, headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
