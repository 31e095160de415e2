"""The detection rules, each naming the engine it belongs to.

Engines follow the split OT operators know: *policy* for departures from the
learned baseline, *protocol* for traffic that breaks its specification,
*operational* for actions that change a controller's state (program transfer,
stop/start, restart), *anomaly* for behaviour no single packet shows (scans).
Policy rules need a baseline and stay silent while it is learned; the others
hold regardless of what was normal.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from passive_monitor.alerts.activity import Activity
from passive_monitor.alerts.addresses import is_host
from passive_monitor.alerts.attack import REMOTE_SYSTEM_DISCOVERY
from passive_monitor.alerts.model import Engine, Party, Severity
from passive_monitor.alerts.scan import ScanFinding
from passive_monitor.baseline import Baseline, service_of
from passive_monitor.flows import Endpoint
from passive_monitor.sensor import Observation


@dataclass(frozen=True, slots=True, kw_only=True)
class Candidate:
    """An alert before deduplication gives it an id and a count."""

    rule: str
    engine: Engine
    severity: Severity
    title: str
    description: str
    protocol: str | None
    function: str | None
    technique: str | None
    client: Party | None
    server: Party | None
    # Whether the protocol is part of the identity of the alert (new-connection
    # alerts are about the conversation, whichever PDU revealed it).
    keyed_protocol: bool = True


@functools.lru_cache(maxsize=65536)
def party(endpoint: Endpoint) -> Party | None:
    """The alert's view of an endpoint; cached because a busy flow repeats it per PDU."""
    return Party(ip=endpoint.ip, port=endpoint.port, mac=endpoint.mac) if endpoint.ip else None


_OPERATIONAL: dict[str, tuple[str, Severity]] = {
    "program_download": ("program-download", "critical"),
    "program_upload": ("program-upload", "high"),
    "mode_change": ("mode-change", "critical"),
    "restart": ("restart", "high"),
}
_POLICY_SENSITIVE: dict[str, Severity] = {"write": "high", "command": "high", "file": "high"}


def violations(observation: Observation) -> list[Candidate]:
    """Protocol engine: undecodable frames and PDUs that break their specification.

    The reason text often carries per-packet numbers, so it is the description of
    the first occurrence, not part of the alert's identity: a fuzzing stream
    yields one alert per conversation and protocol with a growing count.
    """
    if observation.kind == "violation":
        return [
            Candidate(
                rule="malformed",
                engine="protocol",
                severity="medium",
                title="Malformed packet",
                description=observation.reason or "the frame could not be decoded",
                protocol=None,
                function=None,
                technique=None,
                client=party(observation.client),
                server=party(observation.server),
            )
        ]
    message = observation.message
    if message is None or not message.violations:
        return []
    client, server = party(observation.client), party(observation.server)
    return [
        Candidate(
            rule="protocol-violation",
            engine="protocol",
            severity="medium",
            title=f"{message.protocol} protocol violation",
            description=violation,
            protocol=message.protocol,
            function=None,
            technique=None,
            client=client,
            server=server,
        )
        for violation in message.violations
    ]


def operational(observation: Observation, activity: Activity, protocol: str) -> list[Candidate]:
    """Operational engine: program transfer, operating-mode changes and restarts."""
    found = _OPERATIONAL.get(activity.category)
    if found is None:
        return []
    rule, severity = found
    client, server = observation.client.ip, observation.server.ip
    return [
        Candidate(
            rule=rule,
            engine="operational",
            severity=severity,
            title=f"{protocol} {activity.label}",
            description=f"{client} sent {activity.label} ({protocol} {activity.function}) "
            f"to {server}",
            protocol=protocol,
            function=activity.function,
            technique=activity.technique,
            client=party(observation.client),
            server=party(observation.server),
        )
    ]


def departures(
    observation: Observation,
    activity: Activity | None,
    protocol: str | None,
    baseline: Baseline,
) -> list[Candidate]:
    """Policy engine: assets, conversations and functions the baseline never saw."""
    client_ip, server_ip = observation.client.ip, observation.server.ip
    if not client_ip:
        return []
    found: list[Candidate] = []
    for endpoint in (observation.client, observation.server):
        if is_host(endpoint.ip, transport=observation.transport) and (
            endpoint.ip not in baseline.assets
        ):
            found.append(
                Candidate(
                    rule="new-asset",
                    engine="policy",
                    severity="medium",
                    title=f"New asset {endpoint.ip}",
                    description=f"{endpoint.ip} was not seen while the baseline was learned",
                    protocol=None,
                    function=None,
                    technique=None,
                    client=party(endpoint),
                    server=None,
                    keyed_protocol=False,
                )
            )
    service = service_of(observation)
    if is_host(server_ip, transport=observation.transport) and not baseline.knows_connection(
        client_ip, server_ip, service
    ):
        found.append(
            Candidate(
                rule="new-connection",
                engine="policy",
                severity="medium",
                title=f"New connection {client_ip} -> {server_ip} ({protocol or service})",
                description=f"{client_ip} reached {server_ip} on {service}, "
                "which the baseline does not include",
                protocol=protocol,
                function=service,
                technique=None,
                client=party(observation.client),
                server=party(observation.server),
                keyed_protocol=False,
            )
        )
    if activity is None or protocol is None:
        return found
    if baseline.knows_function(client_ip, server_ip, protocol, activity.function):
        return found
    severity = _POLICY_SENSITIVE.get(activity.category)
    if severity is not None:
        found.append(
            Candidate(
                rule=activity.category,
                engine="policy",
                severity=severity,
                title=f"Unlearned {protocol} {activity.label}",
                description=f"{client_ip} sent {activity.label} ({protocol} {activity.function}) "
                f"to {server_ip}; the baseline has no such {activity.category} from this client",
                protocol=protocol,
                function=activity.function,
                technique=activity.technique,
                client=party(observation.client),
                server=party(observation.server),
            )
        )
    elif activity.category not in _OPERATIONAL:
        found.append(
            Candidate(
                rule="new-function",
                engine="policy",
                severity="medium",
                title=f"New {protocol} function {activity.label}",
                description=f"{client_ip} used {protocol} {activity.function} ({activity.label}) "
                f"towards {server_ip} for the first time",
                protocol=protocol,
                function=activity.function,
                technique=activity.technique,
                client=party(observation.client),
                server=party(observation.server),
            )
        )
    return found


def scan(finding: ScanFinding, observation: Observation) -> Candidate:
    """Anomaly engine: a sweep of addresses or of ports."""
    if finding.kind == "address-scan":
        title = f"Address scan from {finding.client}"
        description = f"{finding.client} opened conversations with {finding.targets} hosts"
        server = None
    else:
        title = f"Port scan from {finding.client} against {finding.server}"
        description = (
            f"{finding.client} opened conversations on {finding.targets} ports of {finding.server}"
        )
        server = Party(ip=finding.server or "")
    return Candidate(
        rule=finding.kind,
        engine="anomaly",
        severity="high",
        title=title,
        description=description,
        protocol=None,
        function=None,
        technique=REMOTE_SYSTEM_DISCOVERY,
        client=party(observation.client),
        server=server,
        keyed_protocol=False,
    )
