"""``sevenfold demo``: the whole story on one machine, in under a minute.

A fleet server with its managed mTLS broker, a handful of simulated boards
whose consoles are pseudo-terminals, provisioned over them by the factory
station exactly as boards on a line are, then enrolling and heartbeating, and
the fleet table the operator would see, with each device's proven root of
trust. Everything runs in a temporary state
directory and is torn down at the end.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer

from fleet_platform.server_config import ServerConfig
from sevenfold.api_client import FleetClient
from sevenfold.cli.extras import missing_extra
from sevenfold.cli.output import emit_json, reported_errors, say, show
from sevenfold.cli.tables import device_table

HWMODEL = "sim-board-1"


def board_kinds(count: int) -> list[str]:
    """The root-of-trust kind of each demo board, in order: the seam for TPM and DICE boards."""
    return ["software"] * count


def demo(
    devices: Annotated[int, typer.Option("--devices", min=1, max=50)] = 5,
    beats: Annotated[int, typer.Option("--beats", min=1, max=20)] = 3,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Start a server and simulated devices; show them online; exit 0 if all are."""
    with reported_errors():
        try:
            from device_runtime.simulator import BrokerAddress
            from sevenfold.cli.simulate import run_fleet
            from sevenfold.server import FleetServer
        except ModuleNotFoundError as exc:
            raise missing_extra(command="demo", extra="server", error=exc) from exc
    with reported_errors(), tempfile.TemporaryDirectory(prefix="sevenfold-demo-") as tmp:
        state = Path(tmp)
        # Free ports: a demo must not collide with a real server (or another demo) on 8883.
        config = ServerConfig(state_dir=state, http_port=0, broker_port=0, heartbeat_interval=1)
        with FleetServer(config=config) as fleet:
            assert fleet.broker is not None
            if not as_json:
                say(("fleet server", "bold"), " ", fleet.http_url, " (OpenAPI at /docs)")
                say(
                    ("managed broker", "bold"),
                    f" mTLS on {fleet.broker.host}:{fleet.broker.port}",
                )
                say(f"provisioning {devices} simulated boards over their consoles (pty)")
            device_ids = provision_over_consoles(state, fleet.http_url, board_kinds(devices))
            simulated = run_fleet(
                state=state,
                broker=BrokerAddress(
                    host=fleet.broker.host,
                    port=fleet.broker.port,
                    ca_path=fleet.broker.ca_path,
                    prefix=config.prefix,
                ),
                count=devices,
                beats=beats,
                device_ids=device_ids,
            )
            rows = FleetClient.for_state_dir(state).get("/api/v1/devices")
    failed = [d for d in simulated.devices if d.error]
    online = [row for row in rows if row["status"] == "online"]
    if as_json:
        emit_json({"devices": rows, "errors": {d.device_id: d.error for d in failed}})
    else:
        show(device_table(rows, title="Fleet"))
        for device in failed:
            say((device.device_id, "red"), ": ", device.error)
        say(f"{len(online)}/{devices} devices online")
    if failed or len(online) != devices:
        raise typer.Exit(1)


def provision_over_consoles(state: Path, server: str, kinds: list[str]) -> list[str]:
    """The factory line of the demo: one pty board per kind, provisioned by the station."""
    from device_runtime.console_device import ConsoleDevice, export_credentials
    from fleet_platform import api_tokens
    from sevenfold.factory_station import Station, StationError, device_id_for, init_ca, provision

    token = api_tokens.read(state, name=api_tokens.FACTORY)
    if token is None:
        raise StationError("token", "the demo server wrote no factory token")
    station = Station(
        authority=init_ca(state / "manufacturer-ca"), server=server, token=token, name="demo"
    )
    device_ids = []
    for number, kind in enumerate(kinds, 1):
        serial = f"{number:04d}"
        device_id = device_id_for(HWMODEL, serial)
        directory = state / "devices" / device_id
        with ConsoleDevice(directory=directory, hwmodel=HWMODEL, serial=serial, rot=kind) as board:
            result = provision(station, board.path)
        if result.error is not None:
            raise StationError(result.code or "factory", f"{device_id}: {result.error}")
        export_credentials(directory)
        device_ids.append(device_id)
    return device_ids
