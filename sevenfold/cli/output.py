"""How every subcommand reports: rich for people, JSON for scripts, one error form."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from device_runtime.core.errors import SevenfoldError

console = Console()
errors = Console(stderr=True)


@contextmanager
def reported_errors() -> Iterator[None]:
    """Turn a Sevenfold error into one clear line and exit status 2, never a traceback."""
    try:
        yield
    except SevenfoldError as exc:
        errors.print(Text.assemble(("error", "red"), " ", exc.explain()))
        raise typer.Exit(2) from exc


def emit_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, sort_keys=True, default=str))


def device_table(rows: list[dict[str, Any]], *, title: str) -> Table:
    table = Table(title=title)
    for column in ("device", "status", "root of trust", "firmware", "boots", "beats", "last seen"):
        table.add_column(column, no_wrap=True)
    for row in rows:
        colour = "green" if row["status"] == "online" else "red"
        table.add_row(
            row["device_id"],
            f"[{colour}]{row['status']}[/]",
            row["rot_verified"] or f"{row['rot_claimed']} (claimed)",
            row["swversion"],
            str(row["boot_count"]),
            "-" if row["last_seq"] is None else str(row["last_seq"]),
            _clock_time(str(row["last_seen"])),
        )
    return table


def _clock_time(iso: str) -> str:
    """HH:MM:SS UTC of an ISO timestamp; the date adds nothing to a live table."""
    try:
        return datetime.fromisoformat(iso).astimezone(UTC).strftime("%H:%M:%S UTC")
    except ValueError:
        return iso
