"""``sevenfold devices``: the fleet as the running server sees it."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

import typer

from sevenfold.api_client import FleetClient
from sevenfold.cli.options import JsonOption, StateOption, UrlOption, state_dir
from sevenfold.cli.output import emit_json, reported_errors, show
from sevenfold.cli.tables import device_detail_table, device_table, event_table, update_table

app = typer.Typer(help="Managed devices: enrollment, liveness, rejected messages, updates.")


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


@app.command("show")
def show_device(
    device: Annotated[str, typer.Argument(help="Device id.")],
    state: StateOption = None,
    url: UrlOption = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Update entries shown.")] = 20,
    as_json: JsonOption = False,
) -> None:
    """One device: identity, status, last attestation and update history."""
    path = f"/api/v1/devices/{quote(device, safe='')}"
    with reported_errors():
        client = FleetClient.for_state_dir(state_dir(state), url=url)
        record = client.get(path)
        updates = client.get(f"{path}/updates", limit=limit)
    if as_json:
        emit_json({"device": record, "updates": updates})
        return
    show(device_detail_table(record))
    entries = updates["entries"]
    more = (
        " (older ones: --json, or the REST route's next_before)" if updates["next_before"] else ""
    )
    show(update_table(entries, title=f"last {len(entries)} update reports{more}"))
