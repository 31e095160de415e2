"""``sevenfold demo``: the whole story on one machine, in under a minute.

A fleet server with its managed mTLS broker, a handful of simulated devices
that are provisioned on a simulated factory line, enroll and heartbeat, and
the fleet table the operator would see. Everything runs in a temporary state
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
                say(f"provisioning {devices} simulated devices (software root of trust)")
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
