"""The detector: learning period, rules, and deduplication in one pass per observation.

Learning ends after a number of frames or a span of capture time, whichever
the operator chose; from then on the baseline is fixed except for what an
operator explicitly learns. Repeated activity updates one alert (count, last
seen, a few evidence frames) so a polling loop yields one alert, not thousands.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from dataclasses import dataclass

from passive_monitor.alerts.activity import Activity, classify
from passive_monitor.alerts.model import MAX_EVIDENCE, Alert, Evidence, alert_id
from passive_monitor.alerts.rules import Candidate, departures, operational, scan, violations
from passive_monitor.alerts.scan import ScanDetector
from passive_monitor.baseline import Baseline
from passive_monitor.dissectors import StreamDissector, all_dissectors
from passive_monitor.flows import Endpoint
from passive_monitor.sensor import Observation

AlertKey = tuple[str, str, str, str, str]
PolicyCase = tuple[Endpoint, Endpoint, str, str | None, Activity | None]

# Distinct (client, server, protocol, activity) cases whose policy verdict is
# remembered; past this the memo starts over rather than grow with a scan.
MAX_POLICY_CASES = 65_536


@dataclass(slots=True)
class _Tally:
    """Repeat bookkeeping for one alert, kept mutable so a polling loop costs a counter bump."""

    first: Alert
    count: int
    last_seen: float
    evidence: list[Evidence]


def alert_key(candidate: Candidate) -> AlertKey:
    """What makes two candidates the same alert (see :func:`alert_id`)."""
    client = candidate.client.ip if candidate.client else ""
    server = candidate.server.ip if candidate.server else ""
    protocol = candidate.protocol if candidate.keyed_protocol else None
    return (candidate.rule, client, server, protocol or "", candidate.function or "")


def protocols_by_service() -> dict[str, str]:
    """Protocol names by ``transport/port`` from the dissectors' well-known ports."""
    names: dict[str, str] = {}
    for cls in all_dissectors():
        transport = "tcp" if issubclass(cls, StreamDissector) else "udp"
        for port in cls.ports:
            names.setdefault(f"{transport}/{port}", cls.name)
    return names


class Detector:
    """Feeds observations to the baseline while learning and to the rules always."""

    __slots__ = (
        "_learning",
        "_policy_cases",
        "_policy_revision",
        "_start",
        "_tallies",
        "baseline",
        "learn_frames",
        "learn_seconds",
        "max_alerts",
        "scans",
        "services",
    )

    def __init__(
        self,
        *,
        baseline: Baseline,
        learn_frames: int = 0,
        learn_seconds: float = 0.0,
        scans: ScanDetector | None = None,
        services: dict[str, str] | None = None,
        max_alerts: int = 50_000,
    ) -> None:
        self.baseline = baseline
        self.learn_frames = learn_frames
        self.learn_seconds = learn_seconds
        self.scans = scans if scans is not None else ScanDetector()
        self.services = services if services is not None else protocols_by_service()
        self.max_alerts = max_alerts
        self._tallies: OrderedDict[AlertKey, _Tally] = OrderedDict()
        self._learning = learn_frames > 0 or learn_seconds > 0
        self._start: float | None = None
        self._policy_cases: dict[PolicyCase, list[tuple[AlertKey, Candidate]]] = {}
        self._policy_revision = -1

    @property
    def learning(self) -> bool:
        return self._learning

    @property
    def alerts(self) -> list[Alert]:
        """Every distinct alert so far with its current count, oldest first."""
        current = [
            dataclasses.replace(
                t.first, count=t.count, last_seen=t.last_seen, evidence=tuple(t.evidence)
            )
            for t in self._tallies.values()
        ]
        return sorted(current, key=lambda a: (a.first_seen, a.id))

    def _still_learning(self, observation: Observation) -> bool:
        if not self._learning:
            return False
        if self._start is None:
            self._start = observation.ts
        by_frames = self.learn_frames > 0 and observation.frame <= self.learn_frames
        by_time = self.learn_seconds > 0 and observation.ts - self._start < self.learn_seconds
        self._learning = by_frames or by_time
        return self._learning

    def observe(self, observation: Observation) -> list[Alert]:
        """Alerts raised for the first time by this observation (repeats only update counts)."""
        learning = self._still_learning(observation)
        message = observation.message
        activity = classify(message) if message is not None else None
        if learning:
            self.baseline.learn(observation, activity)
        protocol = (
            message.protocol
            if message is not None
            else self.services.get(f"{observation.transport}/{observation.server.port}")
        )
        candidates = violations(observation)
        if activity is not None and protocol is not None:
            candidates.extend(operational(observation, activity, protocol))
        if observation.kind == "connection" and observation.client.ip:
            for finding in self.scans.connection(
                ts=observation.ts,
                client=observation.client.ip,
                server=observation.server.ip,
                port=observation.server.port,
            ):
                candidates.append(scan(finding, observation))
        cases = [(alert_key(candidate), candidate) for candidate in candidates]
        if not learning and observation.kind != "violation":
            cases += self._policy(observation, activity, protocol)
        raised: list[Alert] = []
        tallies = self._tallies
        for key, candidate in cases:
            tally = tallies.get(key)
            if tally is None:
                alert = self._raise(key, candidate, observation)
                if alert is not None:
                    raised.append(alert)
                continue
            # A repeat, by far the common case: a polling loop costs a counter bump.
            tally.count += 1
            tally.last_seen = observation.ts
            evidence = tally.evidence
            if len(evidence) < MAX_EVIDENCE and evidence[-1].frame != observation.frame:
                evidence.append(Evidence(frame=observation.frame, ts=observation.ts))
            tallies.move_to_end(key)
        return raised

    def _policy(
        self, observation: Observation, activity: Activity | None, protocol: str | None
    ) -> list[tuple[AlertKey, Candidate]]:
        """The policy engine's verdict, worked out once per distinct case.

        After learning, a polling loop repeats the same client, server and
        function for hours; the verdict depends only on those and on the
        baseline, so it is remembered until the baseline changes.
        """
        if self._policy_revision != self.baseline.revision:
            self._policy_cases.clear()
            self._policy_revision = self.baseline.revision
        case = (observation.client, observation.server, observation.transport, protocol, activity)
        verdict = self._policy_cases.get(case)
        if verdict is None:
            if len(self._policy_cases) >= MAX_POLICY_CASES:
                self._policy_cases.clear()
            found = departures(observation, activity, protocol, self.baseline)
            verdict = self._policy_cases[case] = [(alert_key(c), c) for c in found]
        return verdict

    def _raise(self, key: AlertKey, candidate: Candidate, observation: Observation) -> Alert | None:
        """A new alert, unless an operator accepted this activity."""
        if self.baseline.accepts(key):
            return None
        if len(self._tallies) >= self.max_alerts:
            self._tallies.popitem(last=False)
        first = Evidence(frame=observation.frame, ts=observation.ts)
        alert = Alert(
            id=alert_id(*key),
            rule=candidate.rule,
            engine=candidate.engine,
            severity=candidate.severity,
            title=candidate.title,
            description=candidate.description,
            protocol=candidate.protocol,
            function=candidate.function,
            client=candidate.client,
            server=candidate.server,
            technique=candidate.technique,
            evidence=(first,),
            count=1,
            first_seen=observation.ts,
            last_seen=observation.ts,
            transport=observation.transport,
        )
        self._tallies[key] = _Tally(
            first=alert, count=1, last_seen=observation.ts, evidence=[first]
        )
        return alert
