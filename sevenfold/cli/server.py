"""``sevenfold server``: run the fleet server until interrupted; ``server status`` asks after it.

``server`` is a command group only so that ``status`` can live under it: run
without a subcommand it starts the server with every option it always had.
"""

from __future__ import annotations

import gc
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from fleet_platform.broker_config import DEFAULT_BROKER_PORT
from fleet_platform.server_config import (
    DEFAULT_HTTP_PORT,
    MAX_GATEWAY_PROCESSES,
    SERVICES,
    ExternalBroker,
    ServerConfig,
)
from sevenfold.cli.extras import missing_extra
from sevenfold.cli.options import StateOption, state_dir
from sevenfold.cli.output import reported_errors, say


def server(
    ctx: typer.Context,
    state: StateOption = None,
    database: Annotated[
        str | None,
        typer.Option(
            "--database",
            help="SQLAlchemy URL, e.g. postgresql+psycopg://host/db (default: SQLite in state).",
            envvar="SEVENFOLD_DATABASE",
        ),
    ] = None,
    http_host: Annotated[str, typer.Option("--http-host")] = "127.0.0.1",
    http_port: Annotated[int, typer.Option("--http-port", min=0, max=65535)] = DEFAULT_HTTP_PORT,
    service: Annotated[
        list[str] | None,
        typer.Option("--service", help=f"Run only these services: {', '.join(SERVICES)}."),
    ] = None,
    broker_host: Annotated[
        str | None, typer.Option("--broker-host", help="External mTLS broker (default: managed).")
    ] = None,
    broker_port: Annotated[
        int,
        typer.Option(
            "--broker-port",
            min=0,
            max=65535,
            help="The managed broker listens here (0: any free port); with --broker-host,"
            " where the external broker is reached.",
        ),
    ] = DEFAULT_BROKER_PORT,
    broker_ca: Annotated[Path | None, typer.Option("--broker-ca")] = None,
    cert: Annotated[Path | None, typer.Option("--cert", help="Server client certificate.")] = None,
    key: Annotated[Path | None, typer.Option("--key", help="Server client key.")] = None,
    heartbeat_interval: Annotated[int, typer.Option("--heartbeat-interval", min=1)] = 30,
    gateway_processes: Annotated[
        int,
        typer.Option(
            "--gateway-processes",
            min=1,
            max=MAX_GATEWAY_PROCESSES,
            help="Gateways serving devices on this machine, each in a process of its own"
            " (managed broker only).",
        ),
    ] = 1,
) -> None:
    """Serve attestation and updates (REST API, OpenAPI at /docs, MQTT gateway)."""
    if ctx.invoked_subcommand is not None:
        return  # a subcommand such as `status` runs instead of the server
    with reported_errors():
        try:
            from sevenfold.server import FleetServer
        except ModuleNotFoundError as exc:
            raise missing_extra(command="server", extra="server", error=exc) from exc
        external = None
        if broker_host is not None:
            if broker_ca is None or cert is None or key is None:
                raise typer.BadParameter("--broker-host needs --broker-ca, --cert and --key")
            external = ExternalBroker(
                host=broker_host, port=broker_port, ca_path=broker_ca, cert_path=cert, key_path=key
            )
        config = ServerConfig(
            state_dir=state_dir(state),
            database_url=database,
            http_host=http_host,
            http_port=http_port,
            broker=external,
            heartbeat_interval=heartbeat_interval,
            broker_port=broker_port,
            gateway_processes=gateway_processes,
            services=tuple(service) if service else SERVICES,
        )
        fleet = FleetServer(config=config)
        fleet.start()
    # Everything loaded so far lives as long as the process: moved out of the
    # collector's sight, full collections stay short instead of pausing every
    # request in flight for hundreds of milliseconds on a large fleet.
    gc.collect()
    gc.freeze()
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    say("fleet server at ", (fleet.http_url, "bold"), f" (OpenAPI: {fleet.http_url}/docs)")
    if fleet.broker is not None:
        say(f"managed broker (mTLS) at {fleet.broker.host}:{fleet.broker.port}")
    say("state in ", config.state_dir, "; stop with Ctrl-C")
    stop.wait()
    fleet.stop()
