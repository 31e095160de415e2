"""``sevenfold monitor`` and ``sevenfold assets``: the passive monitor from a shell.

One command covers the two deployments: replaying a capture file (forensics,
acceptance tests, tuning a baseline before going live) and watching a SPAN
port. Both produce the same inventory, alerts and exports, so what an operator
tuned on a capture behaves identically on the wire.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any, cast

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TransferSpeedColumn
from rich.table import Table

from device_runtime.core.errors import SevenfoldError
from passive_monitor.advisories import VulnerabilityHint, load_advisories, match
from passive_monitor.alerts.engine import Detector, protocols_by_service
from passive_monitor.alerts.model import Alert
from passive_monitor.baseline import Baseline
from passive_monitor.capture.errors import CaptureError
from passive_monitor.dissectors import DatagramDissector, StreamDissector, all_dissectors
from passive_monitor.export.cef import cef_event
from passive_monitor.export.jsonl import write_jsonl
from passive_monitor.export.syslog import SyslogSender
from passive_monitor.inventory import Asset, Inventory, InventoryBuilder
from passive_monitor.oui import OuiRegistry
from passive_monitor.sensor import Observation, Sensor

PROGRESS_EVERY = 2048
INVENTORY_EVERY = 30.0

DissectorClass = type[StreamDissector] | type[DatagramDissector]


class UsageError(SevenfoldError):
    code = "usage"


@contextmanager
def _reported() -> Iterator[None]:
    """A Sevenfold or capture error becomes one line on stderr and exit 2, never a traceback."""
    try:
        yield
    except SevenfoldError as exc:
        Console(stderr=True).print(f"[red]error[/red] {exc.explain()}")
        raise typer.Exit(2) from exc
    except CaptureError as exc:
        Console(stderr=True).print(f"[red]error[/red] capture: {exc}")
        raise typer.Exit(2) from exc


def _version() -> str:
    try:
        return metadata.version("sevenfold")
    except metadata.PackageNotFoundError:
        return "0"


def _emit_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, sort_keys=True, default=str))


JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def monitor_command(
    pcap: Annotated[
        Path | None, typer.Option("--pcap", help="Capture file (pcap or pcapng) to analyse.")
    ] = None,
    interface: Annotated[
        str | None, typer.Option("--interface", help="Network interface to watch (SPAN port).")
    ] = None,
    baseline: Annotated[
        Path | None,
        typer.Option(
            "--baseline", help="Baseline file: loaded if it exists, else learned and saved."
        ),
    ] = None,
    learn_packets: Annotated[
        int, typer.Option("--learn-packets", min=0, help="Frames to learn from before alerting.")
    ] = 1000,
    learn_seconds: Annotated[
        float,
        typer.Option("--learn-seconds", min=0.0, help="Capture time to learn for (0 = by frames)."),
    ] = 0.0,
    jsonl: Annotated[
        Path | None, typer.Option("--jsonl", help="Write alerts, assets and hints as JSON lines.")
    ] = None,
    cef: Annotated[
        str | None,
        typer.Option("--cef", help="Send alerts as CEF over syslog: udp://HOST:PORT or tcp://..."),
    ] = None,
    inventory: Annotated[
        Path | None, typer.Option("--inventory", help="Write the asset inventory to this file.")
    ] = None,
    advisories: Annotated[
        Path | None,
        typer.Option("--advisories", help="Advisory file replacing the built-in sample."),
    ] = None,
    duration: Annotated[
        float | None,
        typer.Option("--duration", min=0.0, help="Stop watching an interface after N seconds."),
    ] = None,
    port: Annotated[
        list[str] | None,
        typer.Option("--port", help="Extra port for a protocol, e.g. modbus=5020 (repeatable)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Watch OT traffic passively: inventory, baseline, alerts, SIEM export."""
    with _reported():
        if (pcap is None) == (interface is None):
            raise UsageError("give exactly one of --pcap FILE or --interface IF")
        if pcap is not None and not pcap.is_file():
            raise UsageError(f"{pcap}: no such capture file")
        known = load_advisories(advisories)
        oui = OuiRegistry.load()
        learned_from_file = baseline is not None and baseline.exists()
        base = Baseline.load(baseline) if learned_from_file and baseline else Baseline()
        dissectors, services = _dissectors(port or [])
        detector = Detector(
            baseline=base,
            learn_frames=0 if learned_from_file else learn_packets,
            learn_seconds=0.0 if learned_from_file else learn_seconds,
            services=services,
        )
        builder = InventoryBuilder(oui=oui)
        sensor = Sensor(dissectors=dissectors)
        sender = SyslogSender(cef) if cef else None
        saved_at = time.monotonic()
        try:
            observations = _observations(sensor, pcap, interface, duration, quiet=as_json)
            for observation in observations:
                builder.observe(observation)
                if inventory is not None and time.monotonic() - saved_at > INVENTORY_EVERY:
                    # A sensor on a SPAN port runs for months; `assets list` must
                    # not wait for it to stop to see what it has found.
                    builder.snapshot().save(inventory)
                    saved_at = time.monotonic()
                for alert in detector.observe(observation):
                    if sender is not None:
                        sender.send(
                            cef_event(alert, version=_version()),
                            severity=alert.severity,
                            ts=alert.last_seen,
                        )
        finally:
            if sender is not None:
                sender.close()
        snapshot = builder.snapshot()
        hints = match(snapshot.assets, known)
        alerts = detector.alerts
        if baseline is not None and not learned_from_file:
            base.save(baseline)
        if inventory is not None:
            snapshot.save(inventory)
        if jsonl is not None:
            write_jsonl(jsonl, alerts=alerts, assets=snapshot.assets, hints=hints)
    stats = sensor.stats
    summary = {
        "source": str(pcap) if pcap is not None else f"interface:{interface}",
        "packets": stats.packets,
        "bytes": stats.bytes,
        "decode_errors": stats.decode_errors,
        "flows_evicted": stats.flows_evicted,
        "baseline": {
            "path": str(baseline) if baseline else None,
            "loaded": learned_from_file,
            "learned_observations": base.learned,
            "connections": len(base.connections),
            "functions": len(base.functions),
        },
        "assets": [asset.to_dict() for asset in snapshot.assets],
        "alerts": [alert.to_dict() for alert in alerts],
        "vulnerabilities": [hint.to_dict() for hint in hints],
        "cef_sent": sender.sent if sender is not None else 0,
    }
    if as_json:
        _emit_json(summary)
        return
    console = Console()
    console.print(
        f"{stats.packets} packets, {len(snapshot.assets)} assets, {len(alerts)} alerts, "
        f"{len(hints)} vulnerability hints"
    )
    console.print(_asset_table(snapshot.assets))
    console.print(_alert_table(alerts))
    if hints:
        console.print(_hint_table(hints))


def _dissectors(extra: list[str]) -> tuple[list[DissectorClass], dict[str, str]]:
    """The standard dissectors plus operator-assigned ports (Modbus on 5020 and the like).

    Plants often move a protocol off its well-known port; the sensor picks a
    dissector by port, so each extra port becomes a subclass listing it, placed
    first so that it wins.
    """
    standard = all_dissectors()
    by_name = {cls.name: cls for cls in standard}
    services = protocols_by_service()
    added: list[DissectorClass] = []
    for item in extra:
        name, _, number = item.partition("=")
        cls = by_name.get(name.strip())
        if cls is None or not number.strip().isdigit() or not 0 < int(number) < 65536:
            known = ", ".join(sorted(by_name))
            raise UsageError(
                f"--port {item!r}: expected PROTOCOL=PORT with PROTOCOL one of {known}"
            )
        value = int(number)
        added.append(
            cast(DissectorClass, type(cls.__name__, (cls,), {"ports": frozenset({value})}))
        )
        transport = "tcp" if issubclass(cls, StreamDissector) else "udp"
        services[f"{transport}/{value}"] = cls.name
    return [*added, *standard], services


def _observations(
    sensor: Sensor, pcap: Path | None, interface: str | None, duration: float | None, *, quiet: bool
) -> Iterator[Observation]:
    if interface is not None:
        stop = threading.Event()
        timer = threading.Timer(duration, stop.set) if duration else None
        if timer is not None:
            timer.daemon = True
            timer.start()
        try:
            yield from sensor.observe_interface(interface, stop=stop)
        except KeyboardInterrupt:
            stop.set()
        finally:
            if timer is not None:
                timer.cancel()
        return
    assert pcap is not None
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TransferSpeedColumn(),
        console=Console(stderr=True),
        transient=True,
        disable=quiet or not sys.stderr.isatty(),
    )
    with progress:
        task = progress.add_task(pcap.name, total=pcap.stat().st_size)
        for count, observation in enumerate(sensor.observe_file(pcap)):
            if count % PROGRESS_EVERY == 0:
                progress.update(task, completed=sensor.stats.bytes)
            yield observation


def _asset_table(assets: tuple[Asset, ...]) -> Table:
    table = Table(title=f"{len(assets)} assets")
    table.add_column("ip", no_wrap=True)
    for column in ("mac vendor", "roles", "vendor / product", "firmware", "level", "state"):
        table.add_column(column)
    for asset in assets:
        roles = ", ".join(f"{protocol}:{role}" for protocol, role in asset.roles)
        product = " ".join(t for t in (asset.vendor, asset.product, asset.model) if t)
        if asset.device_instance is not None:
            product = f"{product} (device {asset.device_instance})".strip()
        table.add_row(
            asset.ip,
            asset.mac_vendor or "-",
            roles or "-",
            product or "-",
            asset.firmware or "-",
            "-" if asset.purdue_level is None else str(asset.purdue_level),
            asset.plc_state or "-",
        )
    return table


_SEVERITY_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan"}


def _alert_table(alerts: list[Alert]) -> Table:
    table = Table(title=f"{len(alerts)} alerts")
    for column in ("severity", "engine", "title", "ATT&CK", "count", "frames"):
        table.add_column(column)
    for alert in alerts:
        style = _SEVERITY_STYLE[alert.severity]
        table.add_row(
            f"[{style}]{alert.severity}[/]",
            alert.engine,
            alert.title,
            alert.technique or "-",
            str(alert.count),
            ",".join(str(e.frame) for e in alert.evidence[:5]),
        )
    return table


def _hint_table(hints: list[VulnerabilityHint]) -> Table:
    table = Table(title=f"{len(hints)} vulnerability hints")
    for column in ("ip", "cve", "severity", "firmware", "confidence"):
        table.add_column(column, no_wrap=True)
    table.add_column("title")
    for hint in hints:
        table.add_row(
            hint.ip, hint.cve, hint.severity, hint.firmware or "-", hint.confidence, hint.title
        )
    return table


assets_app = typer.Typer(help="Assets the passive monitor found (from its inventory file).")


@assets_app.command("list")
def list_assets(
    inventory: Annotated[
        Path, typer.Option("--inventory", help="Inventory file written by `monitor --inventory`.")
    ],
    as_json: JsonOption = False,
) -> None:
    """List every asset with its roles, identity and Purdue level."""
    with _reported():
        if not inventory.is_file():
            raise UsageError(f"{inventory}: no such inventory file")
        loaded = Inventory.load(inventory)
    if as_json:
        _emit_json([asset.to_dict() for asset in loaded.assets])
    else:
        Console().print(_asset_table(loaded.assets))
