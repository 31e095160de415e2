"""``sevenfold monitor``: the passive monitor from a shell.

One command covers the two deployments: replaying a capture file (forensics,
acceptance tests, tuning a baseline before going live) and watching a SPAN
port. Both produce the same inventory, alerts and exports, so what an operator
tuned on a capture behaves identically on the wire.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Annotated, cast

import typer
from rich.progress import BarColumn, Progress, TransferSpeedColumn

from passive_monitor.advisories import load_advisories, match
from passive_monitor.alerts.engine import Detector, protocols_by_service
from passive_monitor.alerts.model import Alert
from passive_monitor.baseline import Baseline
from passive_monitor.dissectors import DatagramDissector, StreamDissector, all_dissectors
from passive_monitor.export.cef import cef_event
from passive_monitor.export.jsonl import write_jsonl
from passive_monitor.export.syslog import SyslogSender
from passive_monitor.forwarding import FleetForwarder, ServerUnreachable
from passive_monitor.inventory import Inventory, InventoryBuilder
from passive_monitor.oui import OuiRegistry
from passive_monitor.sensor import Observation, Sensor
from sevenfold.cli.options import JsonOption
from sevenfold.cli.output import (
    LiteralDescriptionColumn,
    emit_json,
    reported_errors,
    say,
    show,
    stderr_console,
    warn,
)
from sevenfold.cli.reporting import UsageError
from sevenfold.cli.tables import alert_table, asset_table, hint_table

PROGRESS_EVERY = 2048
INVENTORY_EVERY = 30.0

DissectorClass = type[StreamDissector] | type[DatagramDissector]


def _version() -> str:
    try:
        return metadata.version("sevenfold")
    except metadata.PackageNotFoundError:
        return "0"


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
    forward_state: Annotated[
        Path | None,
        typer.Option(
            "--forward-state",
            help="Forward assets and alerts to the fleet server whose state directory this is.",
        ),
    ] = None,
    forward: Annotated[
        str | None,
        typer.Option("--forward", help="Forward to a remote fleet server at this URL."),
    ] = None,
    sensor_token_file: Annotated[
        Path | None,
        typer.Option("--sensor-token-file", help="The server's sensor token (with --forward)."),
    ] = None,
    site: Annotated[
        str, typer.Option("--site", help="Site name the assets are filed under on the server.")
    ] = "site",
    as_json: JsonOption = False,
) -> None:
    """Watch OT traffic passively: inventory, baseline, alerts, SIEM export, fleet forwarding."""
    with reported_errors():
        if (pcap is None) == (interface is None):
            raise UsageError("give exactly one of --pcap FILE or --interface IF")
        forwarder = _forwarder(forward_state, forward, sensor_token_file, site)
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
                if time.monotonic() - saved_at > INVENTORY_EVERY:
                    # A sensor on a SPAN port runs for months; `assets list` and the
                    # fleet server must not wait for it to stop to see what it found.
                    if inventory is not None:
                        builder.snapshot().save(inventory)
                    if forwarder is not None:
                        _forward(forwarder, builder.snapshot(), detector.alerts)
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
        forwarded = _forward(forwarder, snapshot, alerts) if forwarder is not None else None
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
        "forwarded": forwarded,
    }
    if as_json:
        emit_json(summary)
        return
    say(
        f"{stats.packets} packets, {len(snapshot.assets)} assets, {len(alerts)} alerts, "
        f"{len(hints)} vulnerability hints"
    )
    show(asset_table(snapshot.assets))
    show(alert_table(alerts))
    if hints:
        show(hint_table(hints))


def _forwarder(
    state: Path | None, url: str | None, token_file: Path | None, site: str
) -> FleetForwarder | None:
    if state is not None and url is not None:
        raise UsageError("give --forward-state or --forward, not both")
    if state is not None:
        return FleetForwarder.for_state_dir(state, site=site)
    if url is None:
        return None
    if token_file is None or not token_file.is_file():
        raise UsageError("--forward needs --sensor-token-file with the server's sensor token")
    return FleetForwarder(url=url, token=token_file.read_text().strip(), site=site)


def _forward(forwarder: FleetForwarder, snapshot: Inventory, alerts: list[Alert]) -> dict[str, int]:
    """Assets first, then alerts; an unreachable server leaves the alerts spooled."""
    try:
        assets = forwarder.send_inventory(snapshot)
    except ServerUnreachable as exc:
        warn("fleet server unreachable: ", exc.reason)
        assets = None
    delivery = forwarder.send_alerts(alerts)
    return {
        "assets": assets.sent if assets is not None else 0,
        "alerts": delivery.sent,
        "flushed": delivery.flushed,
        "spooled": delivery.spooled,
    }


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
        LiteralDescriptionColumn(),
        BarColumn(),
        TransferSpeedColumn(),
        console=stderr_console(),
        transient=True,
        disable=quiet or not sys.stderr.isatty(),
    )
    with progress:
        task = progress.add_task(pcap.name, total=pcap.stat().st_size)
        for count, observation in enumerate(sensor.observe_file(pcap)):
            if count % PROGRESS_EVERY == 0:
                progress.update(task, completed=sensor.stats.bytes)
            yield observation
