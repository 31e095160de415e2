"""ArcSight Common Event Format, the lingua franca of SIEM connectors.

Escaping follows the CEF standard exactly, because a stray ``|`` in a header
field or ``=`` in an extension value silently shifts every following field on
the SIEM side: in the header ``\\`` and ``|`` are escaped and line breaks are
not allowed; in extension values ``\\`` and ``=`` are escaped and line breaks
are written as ``\\n`` / ``\\r``.
"""

from __future__ import annotations

from passive_monitor.alerts.model import Alert

VENDOR = "Sevenfold"
PRODUCT = "Passive Monitor"
CEF_SEVERITY = {"low": 3, "medium": 5, "high": 8, "critical": 10}


def escape_header(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("|", "\\|")
    return escaped.replace("\r\n", " ").replace("\n", " ").replace("\r", " ")


def escape_value(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("=", "\\=")
    return escaped.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\r")


def cef_event(alert: Alert, *, version: str) -> str:
    """One alert as a CEF:0 line (no trailing newline)."""
    header = "|".join(
        [
            "CEF:0",
            escape_header(VENDOR),
            escape_header(PRODUCT),
            escape_header(version),
            escape_header(alert.rule),
            escape_header(alert.title),
            str(CEF_SEVERITY[alert.severity]),
        ]
    )
    extension: list[tuple[str, str]] = [
        ("rt", str(int(alert.last_seen * 1000))),
        ("start", str(int(alert.first_seen * 1000))),
        ("end", str(int(alert.last_seen * 1000))),
        ("cnt", str(alert.count)),
        ("externalId", alert.id),
        ("cat", alert.engine),
        ("msg", alert.description),
    ]
    if alert.transport:
        extension.append(("proto", alert.transport.upper()))
    if alert.protocol:
        extension.append(("app", alert.protocol))
    for prefix, party in (("s", alert.client), ("d", alert.server)):
        if party is None:
            continue
        extension.append((f"{'src' if prefix == 's' else 'dst'}", party.ip))
        if party.port is not None:
            extension.append((f"{prefix}pt", str(party.port)))
        if party.mac:
            extension.append((f"{prefix}mac", party.mac))
    if alert.technique:
        extension += [("cs1Label", "MITRE ATT&CK for ICS"), ("cs1", alert.technique)]
    if alert.function:
        extension += [("cs2Label", "Function"), ("cs2", alert.function)]
    frames = ",".join(str(e.frame) for e in alert.evidence)
    extension += [("cs3Label", "Evidence frames"), ("cs3", frames)]
    body = " ".join(f"{key}={escape_value(value)}" for key, value in extension)
    return f"{header}|{body}"
