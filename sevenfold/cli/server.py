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

from fleet_platform.broker_config import (
    DEFAULT_BROKER_PORT,
    DEFAULT_LISTEN_ADDRESS,
    DEFAULT_RECOVERY_PORT,
    BrokerError,
    check_listen_address,
)
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
    broker_recovery_port: Annotated[
        int,
        typer.Option(
            "--broker-recovery-port",
            min=0,
            max=65535,
            help="The managed broker's recovery listener (0: any free port), where a device"
            " with only its DeviceID certificate reaches the attestation topics.",
        ),
    ] = DEFAULT_RECOVERY_PORT,
    attestation_gate: Annotated[
        bool,
        typer.Option(
            "--attestation-gate/--no-attestation-gate",
            help="Grant a device its application topics only while it holds a pass from a"
            " passing attestation; --no-attestation-gate grants them to every certified device"
            " (for fleets that cannot attest yet).",
        ),
    ] = True,
    broker_listen: Annotated[
        str | None,
        typer.Option(
            "--broker-listen",
            metavar="ADDRESS",
            help=f"IP address the managed broker listens on (default {DEFAULT_LISTEN_ADDRESS}:"
            " this machine only); 0.0.0.0 for every IPv4 interface, :: for every interface.",
            callback=_listen_address,
        ),
    ] = None,
    broker_name: Annotated[
        list[str] | None,
        typer.Option(
            "--broker-name",
            metavar="NAME",
            help="DNS name or IP address devices use to reach the managed broker (repeatable):"
            " put into its certificate, the first one recorded for local tools.",
        ),
    ] = None,
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
    manufacturer_ca: Annotated[
        list[Path] | None,
        typer.Option(
            "--manufacturer-ca",
            metavar="PEM",
            help="Trust this manufacturer CA for factory registrations (repeatable; kept in the"
            " state directory, so later starts trust it too).",
        ),
    ] = None,
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
        names = tuple(_broker_names(broker_name or []))
        if broker_host is not None:
            if broker_ca is None or cert is None or key is None:
                raise typer.BadParameter("--broker-host needs --broker-ca, --cert and --key")
            if broker_listen is not None or names:
                raise typer.BadParameter(
                    "--broker-listen and --broker-name configure the managed broker; an external"
                    " one (--broker-host) is configured where it runs"
                )
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
            recovery_port=broker_recovery_port,
            attestation_gate=attestation_gate,
            broker_listen=broker_listen or DEFAULT_LISTEN_ADDRESS,
            broker_names=names,
            gateway_processes=gateway_processes,
            services=tuple(service) if service else SERVICES,
            manufacturer_cas=tuple(manufacturer_ca or ()),
        )
        fleet = FleetServer(config=config)
        # Handled from before the start: a stop asked for while starting is a clean stop
        # once started, never the default action killing a half-started server.
        stop = threading.Event()

        def on_signal(signum: int, frame: FrameType | None) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        fleet.start()
    # Everything loaded so far lives as long as the process: moved out of the
    # collector's sight, full collections stay short instead of pausing every
    # request in flight for hundreds of milliseconds on a large fleet.
    gc.collect()
    gc.freeze()
    say("fleet server at ", (fleet.http_url, "bold"), f" (OpenAPI: {fleet.http_url}/docs)")
    if fleet.broker is not None:
        say(
            f"managed broker (mTLS) listening on {fleet.broker.listen} port {fleet.broker.port},"
            f" certificate for {', '.join(fleet.broker.names)}"
        )
    say("state in ", config.state_dir, "; stop with Ctrl-C")
    stop.wait()
    fleet.stop()


def _listen_address(value: str | None) -> str | None:
    """--broker-listen, checked before anything starts: an IP address, never a name."""
    if value is None:
        return None
    try:
        return check_listen_address(value)
    except BrokerError as exc:
        raise typer.BadParameter(exc.reason) from None


def _broker_names(names: list[str]) -> list[str]:
    """--broker-name values, each one a name a certificate can hold.

    Checked here, once the server extra is known to be installed (the check
    lives with the CA, which needs it), so a typo fails before the server starts.
    """
    from fleet_platform.pki import InvalidName, check_host_name

    for name in names:
        try:
            check_host_name(name)
        except InvalidName as exc:
            raise typer.BadParameter(exc.reason, param_hint="--broker-name") from None
    return names
