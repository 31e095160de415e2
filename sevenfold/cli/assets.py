"""``sevenfold assets``: what the passive monitor found, read from its inventory file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from passive_monitor.inventory import Inventory
from sevenfold.cli.options import JsonOption
from sevenfold.cli.output import emit_json, reported_errors, show
from sevenfold.cli.reporting import UsageError
from sevenfold.cli.tables import asset_table

assets_app = typer.Typer(help="Assets the passive monitor found (from its inventory file).")


@assets_app.command("list")
def list_assets(
    inventory: Annotated[
        Path, typer.Option("--inventory", help="Inventory file written by `monitor --inventory`.")
    ],
    as_json: JsonOption = False,
) -> None:
    """List every asset with its roles, identity and Purdue level."""
    with reported_errors():
        if not inventory.is_file():
            raise UsageError(f"{inventory}: no such inventory file")
        loaded = Inventory.load(inventory)
    if as_json:
        emit_json([asset.to_dict() for asset in loaded.assets])
    else:
        show(asset_table(loaded.assets))
