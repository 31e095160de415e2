"""How the monitor's commands report: one error line and exit 2, JSON for scripts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.console import Console

from device_runtime.core.errors import SevenfoldError


class UsageError(SevenfoldError):
    code = "usage"


@contextmanager
def reported() -> Iterator[None]:
    """A Sevenfold error (a damaged capture included) is one line on stderr and exit 2."""
    try:
        yield
    except SevenfoldError as exc:
        Console(stderr=True).print(f"[red]error[/red] {exc.explain()}")
        raise typer.Exit(2) from exc


def emit_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, sort_keys=True, default=str))


JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
