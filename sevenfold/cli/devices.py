"""``sevenfold devices``: the fleet as the running server sees it."""

from __future__ import annotations

from typing import Annotated

import typer

from sevenfold.api_client import FleetClient
from sevenfold.cli.options import JsonOption, StateOption, UrlOption, state_dir
from sevenfold.cli.output import emit_json, reported_errors, show
from sevenfold.cli.tables import device_table, event_table

app = typer.Typer(help="Managed devices: enrollment, liveness, rejected messages.")


@app.command("list")
def list_devices(
    state: StateOption = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """List every enrolled device with its status."""
    with reported_errors():
        rows = FleetClient.for_state_dir(state_dir(state), url=url).get("/api/v1/devices")
    if as_json:
        emit_json(rows)
    else:
        show(device_table(rows, title=f"{len(rows)} devices"))


@app.command("events")
def list_events(
    state: StateOption = None,
    url: UrlOption = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    as_json: JsonOption = False,
) -> None:
    """Recent enrollments and rejected messages, newest first."""
    with reported_errors():
        rows = FleetClient.for_state_dir(state_dir(state), url=url).get(
            "/api/v1/events", limit=limit
        )
    if as_json:
        emit_json(rows)
    else:
        show(event_table(rows))
