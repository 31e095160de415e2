"""How every subcommand reports: rich for people, JSON for scripts, one error form."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from device_runtime.core.errors import SevenfoldError

console = Console()
errors = Console(stderr=True)


@contextmanager
def reported_errors() -> Iterator[None]:
    """Turn a Sevenfold error into one clear line and exit status 2, never a traceback."""
    try:
        yield
    except SevenfoldError as exc:
        errors.print(f"[red]error[/red] {exc.explain()}")
        raise typer.Exit(2) from exc


def emit_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, default=str))


def device_table(rows: list[dict[str, Any]], *, title: str) -> Table:
    table = Table(title=title)
    for column in ("device", "status", "root of trust", "software", "boots", "beats", "last seen"):
        table.add_column(column)
    style: Callable[[str], str] = lambda s: "green" if s == "online" else "red"  # noqa: E731
    for row in rows:
        table.add_row(
            row["device_id"],
            f"[{style(row['status'])}]{row['status']}[/]",
            row["rot"],
            f"{row['swname']} {row['swversion']}",
            str(row["boot_count"]),
            str(row["last_seq"] if row["last_seq"] is not None else "-"),
            str(row["last_seen"]),
        )
    return table
