"""``sevenfold inventory``: managed devices and unmanaged legacy assets, side by side."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from sevenfold.api_client import FleetClient
from sevenfold.cli.options import JsonOption, StateOption, UrlOption, state_dir
from sevenfold.cli.output import console, emit_json, reported_errors


def inventory(
    state: StateOption = None, url: UrlOption = None, as_json: JsonOption = False
) -> None:
    """Everything the fleet server knows about: enrolled devices and passively seen gear."""
    with reported_errors():
        rows = FleetClient.for_state_dir(state_dir(state), url=url).get("/api/v1/inventory")
    if as_json:
        emit_json(rows)
        return
    console.print(_table(rows))


def _table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title=f"{len(rows)} devices and assets")
    for column in ("managed", "id / address", "site", "identity", "status"):
        table.add_column(column, no_wrap=True)
    for row in rows:
        managed = bool(row.get("managed"))
        ident = " ".join(
            str(row[key])
            for key in ("vendor", "product", "hwmodel", "firmware", "swversion")
            if row.get(key)
        )
        table.add_row(
            "[green]yes[/]" if managed else "[yellow]no[/]",
            str(row.get("device_id") or row.get("ip") or "-"),
            str(row.get("site") or "-"),
            ident or "-",
            str(row.get("status") or "-"),
        )
    return table
