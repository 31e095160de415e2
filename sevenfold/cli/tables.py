"""The operator's tables: devices, their events and updates, the inventory, assets, alerts, hints.

Every cell is literal text (:func:`sevenfold.cli.output.literal_table`): what is
in these rows was written by devices, sensors, captures and the server.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from rich.table import Table

from sevenfold.cli.output import Part, literal_table

if TYPE_CHECKING:
    from device_runtime.simulator import SimulatedDevice
    from passive_monitor.advisories import VulnerabilityHint
    from passive_monitor.alerts.model import Alert
    from passive_monitor.inventory import Asset
    from sevenfold.factory_station import BoardResult


def device_table(rows: list[dict[str, Any]], *, title: str) -> Table:
    """The server's ``/devices`` rows, online in green and offline in red.

    Root of trust and hardware model are marked *proven* when factory
    provisioning (or attestation: *verified*) established them, and *claimed*
    when only the device said so; *trust* is the verifier's latest verdict and
    until when its fleet certificate lasts (the DeviceID key is in ``--json``).
    """
    return literal_table(
        headers=(
            "device",
            "status",
            "root of trust",
            "hardware",
            "firmware",
            "trust",
            "boots",
            "beats",
            "last seen",
        ),
        title=title,
        rows=(
            (
                row["device_id"],
                (row["status"], "green" if row["status"] == "online" else "red"),
                _root_of_trust(row),
                _hardware(row),
                row["swversion"],
                trust(row.get("attestation")),
                row["boot_count"],
                row["last_seq"],
                _clock_time(str(row["last_seen"])),
            )
            for row in rows
        ),
    )


_VERDICT_STYLES = {"affirming": "green", "warning": "yellow", "contraindicated": "red"}


def trust(standing: dict[str, Any] | None) -> Part:
    """A device's standing in one cell: quarantined, the verdict and until when it holds."""
    if not standing or standing.get("status") is None:
        return ("not attested", "dim")
    if standing.get("quarantined_at"):
        return ("quarantined", "bold red")
    status = str(standing["status"])
    expires = standing.get("certificate_expires")
    if expires:
        return (f"{status} to {_expiry(str(expires))}", _VERDICT_STYLES.get(status, ""))
    if status == "contraindicated":
        return (f"refused: {standing.get('code')}", "red")
    return (f"{status}, lapsed", "yellow")


def standing_table(rows: list[dict[str, Any]], *, title: str) -> Table:
    """The verifier's ``/attestation`` rows: verdicts, reasons, passes, quarantines."""
    return literal_table(
        headers=("device", "group", "trust", "code", "appraised", "reason"),
        title=title,
        rows=(
            (
                row["device_id"],
                row["group"],
                trust(row),
                row["code"],
                _clock_time(str(row["appraised_at"])) if row["appraised_at"] else None,
                row["quarantine_reason"] or row["reason"],
            )
            for row in rows
        ),
    )


def appraisal_table(rows: list[dict[str, Any]], *, title: str) -> Table:
    """One device's appraisal history, newest first."""
    return literal_table(
        headers=("at", "verdict", "code", "via", "certificate to", "reasons"),
        title=title,
        rows=(
            (
                _clock_time(str(row["at"])),
                (row["status"], _VERDICT_STYLES.get(str(row["status"]), "")),
                row["code"],
                "recovery" if row["via_recovery"] else "fleet",
                _expiry(str(row["certificate_expires"])) if row["certificate_expires"] else None,
                "; ".join(str(reason) for reason in row["reasons"]),
            )
            for row in rows
        ),
    )


def policy_table(policies: dict[str, dict[str, Any]]) -> Table:
    """Every device group's appraisal policy."""
    return literal_table(
        headers=("group", "roots", "min svn", "debug", "max age s", "config", "cert h"),
        title=f"{len(policies)} policies",
        rows=(
            (
                group,
                ", ".join(policy["allowed_roots"]),
                policy["min_security_version"],
                "allowed" if policy["allow_debug"] else "refused",
                policy["max_evidence_age_s"],
                "must be endorsed" if policy["require_endorsed_config"] else "warn",
                policy["certificate_hours"],
            )
            for group, policy in policies.items()
        ),
    )


def endorsement_table(rows: list[dict[str, Any]]) -> Table:
    """Reference values: what each hardware model may run."""
    return literal_table(
        headers=("id", "hardware", "component", "sha-256", "version", "svn", "by"),
        title=f"{len(rows)} endorsements",
        rows=(
            (
                row["id"],
                row["hwmodel"],
                row["component"],
                str(row["digest"])[:16] + "...",
                row["swversion"],
                row["security_version"],
                row["source"],
            )
            for row in rows
        ),
    )


def _proven(row: dict[str, Any]) -> dict[str, Any] | None:
    proven = row.get("proven")
    return proven if isinstance(proven, dict) else None


def _root_of_trust(row: dict[str, Any]) -> Part:
    if row.get("rot_verified"):
        return (f"{row['rot_verified']} (verified)", "green")
    proven = _proven(row)
    if proven is not None:
        return (f"{proven['rot_kind']} (proven)", "green")
    return (f"{row['rot_claimed']} (claimed)", "yellow")


def _hardware(row: dict[str, Any]) -> Part:
    proven = _proven(row)
    if proven is not None:
        return f"{proven['hwmodel']} (proven)"
    return f"{row['hwmodel']} (claimed)"


def device_detail_table(row: dict[str, Any]) -> Table:
    """One ``/devices/{id}`` row as field and value: who it is, how it is, its last verdict."""
    standing = row.get("attestation") or {}
    appraised = standing.get("appraised_at")
    return literal_table(
        headers=("field", "value"),
        title=f"device {row['device_id']}",
        rows=(
            ("device", row["device_id"]),
            ("status", (row["status"], "green" if row["status"] == "online" else "red")),
            ("root of trust", _root_of_trust(row)),
            ("hardware", _hardware(row)),
            ("firmware", _joined(row["swname"], row["swversion"])),
            ("boots", row["boot_count"]),
            ("enrolled", _clock_time(str(row["enrolled_at"]), dated=True)),
            ("last seen", _clock_time(str(row["last_seen"]))),
            ("trust", trust(standing)),
            ("last attestation", _clock_time(str(appraised), dated=True) if appraised else None),
            ("verdict", _joined(standing.get("code"), standing.get("reason"))),
        ),
    )


_UPDATE_STYLES = {"confirmed": "green", "reverted": "bold red", "failed": "bold red"}


def update_table(entries: list[dict[str, Any]], *, title: str) -> Table:
    """A device's ``/devices/{id}/updates`` entries, newest first; reverts and failures in red."""
    return literal_table(
        headers=("at", "state", "from", "to", "target", "progress", "reason"),
        title=title,
        rows=(
            (
                _clock_time(str(entry["at"]), dated=True),
                (entry["state"], _UPDATE_STYLES.get(str(entry["state"]), "")),
                entry["from_version"],
                entry["to_version"],
                entry["target"],
                None if entry["total"] is None else f"{entry['done']}/{entry['total']} bytes",
                entry["reason"],
            )
            for entry in entries
        ),
    )


def board_table(results: Iterable[BoardResult]) -> Table:
    """How each board of a factory run fared; the error is the board's or the server's answer."""
    listed = list(results)
    failed = sum(result.error is not None for result in listed)
    return literal_table(
        headers=("port", "device", "root of trust", "hardware", "result"),
        title=f"{len(listed) - failed}/{len(listed)} boards provisioned",
        rows=(
            (
                result.port,
                result.device_id,
                result.kind,
                result.hwmodel,
                (
                    ("provisioned" if result.registered else "provisioned (registration repeated)")
                    if result.error is None
                    else (f"{result.code} at {result.step}: {result.error}", "red")
                ),
            )
            for result in listed
        ),
    )


def event_table(rows: list[dict[str, Any]]) -> Table:
    """The server's ``/events`` rows, newest first as the server sends them."""
    return literal_table(
        headers=("at", "device", "kind", "code", "reason"),
        title=f"{len(rows)} events",
        rows=(
            (row["at"], row["device_id"], row["kind"], row["code"], row["reason"]) for row in rows
        ),
    )


def inventory_table(rows: list[dict[str, Any]]) -> Table:
    """The server's ``/inventory``: enrolled devices and passively seen legacy assets."""
    return literal_table(
        headers=("managed", "name / address", "site", "identity", "status"),
        title=f"{len(rows)} devices and assets",
        rows=(
            (
                ("yes", "green") if row["managed"] else ("no", "yellow"),
                row["name"] if row["managed"] else _legacy_address(row),
                row["site"],
                _joined(row["vendor"], row["product"], row["firmware"]),
                row["status"],
            )
            for row in rows
        ),
    )


def asset_table(assets: tuple[Asset, ...]) -> Table:
    """What the passive monitor learned of each host."""
    return literal_table(
        headers=("ip", "mac vendor", "roles", "vendor / product", "firmware", "level", "state"),
        title=f"{len(assets)} assets",
        rows=(
            (
                asset.ip,
                asset.mac_vendor,
                ", ".join(f"{protocol}:{role}" for protocol, role in asset.roles) or None,
                _product(asset),
                asset.firmware,
                asset.purdue_level,
                asset.plc_state,
            )
            for asset in assets
        ),
    )


_SEVERITY_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan"}


def alert_table(alerts: list[Alert]) -> Table:
    """The monitor's alerts, severity in colour, with the first capture frames as evidence."""
    return literal_table(
        headers=("severity", "engine", "title", "ATT&CK", "count", "frames"),
        title=f"{len(alerts)} alerts",
        rows=(
            (
                (alert.severity, _SEVERITY_STYLE.get(alert.severity, "")),
                alert.engine,
                alert.title,
                alert.technique,
                alert.count,
                ",".join(str(e.frame) for e in alert.evidence[:5]),
            )
            for alert in alerts
        ),
    )


def hint_table(hints: list[VulnerabilityHint]) -> Table:
    """Advisories that probably apply to an asset of the inventory."""
    return literal_table(
        headers=("ip", "cve", "severity", "firmware", "confidence", "title"),
        title=f"{len(hints)} vulnerability hints",
        rows=(
            (hint.ip, hint.cve, hint.severity, hint.firmware, hint.confidence, hint.title)
            for hint in hints
        ),
    )


def simulated_device_table(devices: Iterable[SimulatedDevice]) -> Table:
    """How each simulated device fared; the error is the server's or the broker's answer."""
    listed = list(devices)
    return literal_table(
        headers=("device", "boots", "beats", "error"),
        title=f"{len(listed)} simulated devices",
        rows=(
            (device.device_id, device.boot_count, device.beats, (device.error, "red"))
            for device in listed
        ),
    )


def _joined(*parts: object) -> str | None:
    """The given parts that are set, space-separated; None (shown as ``-``) when none is."""
    return " ".join(str(part) for part in parts if part) or None


def _legacy_address(row: dict[str, Any]) -> str:
    """A legacy asset's address, and its name in brackets when the traffic gave it one."""
    address, name = str(row["ip"]), row["name"]
    return f"{address} ({name})" if name and name != address else address


def _product(asset: Asset) -> str | None:
    product = _joined(asset.vendor, asset.product, asset.model)
    if asset.device_instance is not None:
        return _joined(product, f"(device {asset.device_instance})")
    return product


def _expiry(iso: str) -> str:
    """Month, day and time of an ISO timestamp: expiries lie a day or more ahead."""
    try:
        return datetime.fromisoformat(iso).astimezone(UTC).strftime("%m-%d %H:%M UTC")
    except ValueError:
        return iso


def _clock_time(iso: str, *, dated: bool = False) -> str:
    """HH:MM:SS UTC of an ISO timestamp; the date adds nothing to a live table, but does to a
    history (*dated*)."""
    pattern = "%Y-%m-%d %H:%M:%S UTC" if dated else "%H:%M:%S UTC"
    try:
        return datetime.fromisoformat(iso).astimezone(UTC).strftime(pattern)
    except ValueError:
        return iso
