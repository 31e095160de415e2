"""Options several subcommands share, spelled the same everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fleet_platform.server_config import default_state_dir

StateOption = Annotated[
    Path | None,
    typer.Option(
        "--state",
        help="Server state directory (default: $SEVENFOLD_STATE, else ~/.local/state/sevenfold).",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def state_dir(value: Path | None) -> Path:
    """The explicit --state, else the environment's or the XDG default (read at run time)."""
    return value if value is not None else default_state_dir()


UrlOption = Annotated[
    str | None, typer.Option("--url", help="Server URL (default: the one recorded in the state)")
]
