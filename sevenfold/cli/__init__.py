"""The ``sevenfold`` command: one entry point, a subcommand per part."""

from __future__ import annotations

import logging

import typer

from sevenfold.cli import demo, devices, server, simulate

app = typer.Typer(
    name="sevenfold",
    help="Device security platform: attestation, signed updates, fleet health, OT monitoring.",
    no_args_is_help=True,
    add_completion=False,
)
app.command("server")(server.server)
app.command("demo")(demo.demo)
app.command("simulate")(simulate.simulate)
app.add_typer(devices.app, name="devices")


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app()
