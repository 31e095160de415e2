"""The ``sevenfold`` command: one entry point, a subcommand per part.

Assembled here rather than in the package ``__init__`` so that each subcommand
module can be imported (and tested) on its own.
"""

from __future__ import annotations

import logging

import typer

from sevenfold.cli import (
    attest,
    demo,
    devices,
    endorse,
    factory,
    image,
    inventory,
    policy,
    server,
    simulate,
    status,
)
from sevenfold.cli.assets import assets_app
from sevenfold.cli.baseline import baseline_app
from sevenfold.cli.monitor import monitor_command

app = typer.Typer(
    name="sevenfold",
    help="Device security platform: attestation, signed updates, fleet health, OT monitoring.",
    no_args_is_help=True,
    add_completion=False,
)
server_app = typer.Typer(invoke_without_command=True, no_args_is_help=False)
server_app.callback()(server.server)
server_app.command("status")(status.status)
app.add_typer(server_app, name="server")
app.command("demo")(demo.demo)
app.command("simulate")(simulate.simulate)
app.add_typer(devices.app, name="devices")
app.add_typer(factory.app, name="factory")
app.add_typer(attest.app, name="attest")
app.add_typer(policy.app, name="policy")
app.add_typer(endorse.app, name="endorse")
app.add_typer(image.app, name="image")
app.command("inventory")(inventory.inventory)
app.command("monitor")(monitor_command)
app.add_typer(assets_app, name="assets")
app.add_typer(baseline_app, name="baseline")


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app()
