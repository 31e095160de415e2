"""Rich tables for assets, alerts and vulnerability hints."""

from __future__ import annotations

from rich.table import Table

from passive_monitor.advisories import VulnerabilityHint
from passive_monitor.alerts.model import Alert
from passive_monitor.inventory import Asset


def asset_table(assets: tuple[Asset, ...]) -> Table:
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


def alert_table(alerts: list[Alert]) -> Table:
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


def hint_table(hints: list[VulnerabilityHint]) -> Table:
    table = Table(title=f"{len(hints)} vulnerability hints")
    for column in ("ip", "cve", "severity", "firmware", "confidence"):
        table.add_column(column, no_wrap=True)
    table.add_column("title")
    for hint in hints:
        table.add_row(
            hint.ip, hint.cve, hint.severity, hint.firmware or "-", hint.confidence, hint.title
        )
    return table
