"""``sevenfold simulate``: simulated devices against a running local server."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from device_runtime.core import protocol
from device_runtime.core.errors import ConfigError
from fleet_platform.server_config import NoServer, RuntimeInfo
from sevenfold.cli.extras import missing_extra
from sevenfold.cli.options import JsonOption, StateOption, state_dir
from sevenfold.cli.output import emit_json, reported_errors, show
from sevenfold.cli.tables import simulated_device_table

if TYPE_CHECKING:
    from device_runtime.simulator import BrokerAddress, SimulatedFleet


def simulate(
    state: StateOption = None,
    devices: Annotated[int, typer.Option("--devices", min=1, max=500)] = 5,
    beats: Annotated[int, typer.Option("--beats", min=1)] = 3,
    as_json: JsonOption = False,
) -> None:
    """Provision simulated devices with the local fleet CA and run them.

    They hold fleet certificates but no root of trust a verifier trusts, so they
    need a server without the attestation gate (``sevenfold server
    --no-attestation-gate``); ``sevenfold demo`` shows boards that attest."""
    state = state_dir(state)
    with reported_errors():
        try:
            from device_runtime.simulator import BrokerAddress
        except ModuleNotFoundError as exc:
            raise missing_extra(command="simulate", extra="device", error=exc) from exc
        info = RuntimeInfo.read(state)
        if info is None or info.broker_host is None or info.broker_port is None or not info.ca_path:
            raise NoServer(f"no running server with a broker recorded in {state}")
        if info.attestation_gate:
            raise ConfigError(
                "the server gates application topics on attestation, which simulated devices"
                " without a provisioned root of trust cannot pass; start it with"
                " --no-attestation-gate, or run sevenfold demo to see boards that attest"
            )
        fleet = run_fleet(
            state=state,
            broker=BrokerAddress(
                host=info.broker_host,
                port=info.broker_port,
                ca_path=Path(info.ca_path),
                prefix=info.prefix,
            ),
            count=devices,
            beats=beats,
        )
    results = [
        {"device_id": d.device_id, "boot_count": d.boot_count, "beats": d.beats, "error": d.error}
        for d in fleet.devices
    ]
    if as_json:
        emit_json(results)
    else:
        show(simulated_device_table(fleet.devices))
    if any(d.error for d in fleet.devices):
        raise typer.Exit(1)


def run_fleet(
    *,
    state: Path,
    broker: BrokerAddress,
    count: int,
    beats: int,
    device_ids: list[str] | None = None,
) -> SimulatedFleet:
    """Provision *count* devices under the state dir and run them to completion."""
    from device_runtime.simulator import SimulatedFleet
    from fleet_platform.pki import fleet_authority

    authority = fleet_authority(state)
    fleet = SimulatedFleet(
        directory=state / "devices",
        broker=broker,
        certify=lambda csr, device_id: authority.sign_csr(
            csr, required_common_name=protocol.check_device_id(device_id)
        ),
        count=count,
        device_ids=device_ids,
    )
    fleet.provision()
    fleet.start(beats=beats)
    fleet.wait(timeout=60 + beats * 120)
    return fleet
