"""The ``sevenfold`` command run in-process as an operator types it, at a fixed width."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from sevenfold.cli.app import app

runner = CliRunner()


def sevenfold(*args: str | Path) -> tuple[int, str]:
    result = runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})
    return result.exit_code, result.output


def ok(*args: str | Path) -> str:
    code, out = sevenfold(*args)
    assert code == 0, out
    return out
