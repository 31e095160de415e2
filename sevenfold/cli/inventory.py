"""``sevenfold inventory``: managed devices and unmanaged legacy assets, side by side."""

from __future__ import annotations

from sevenfold.api_client import FleetClient
from sevenfold.cli.options import JsonOption, StateOption, UrlOption, state_dir
from sevenfold.cli.output import emit_json, reported_errors, show
from sevenfold.cli.tables import inventory_table


def inventory(
    state: StateOption = None, url: UrlOption = None, as_json: JsonOption = False
) -> None:
    """Everything the fleet server knows about: enrolled devices and passively seen gear."""
    with reported_errors():
        rows = FleetClient.for_state_dir(state_dir(state), url=url).get("/api/v1/inventory")
    if as_json:
        emit_json(rows)
    else:
        show(inventory_table(rows))
