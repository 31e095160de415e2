"""Enrollment and liveness: the device registry's view of the fleet.

Enrollment records what a device says about itself under the identity its
certificate proves, marked as claimed; attestation (evidence, verification,
short-lived fleet certificates) is what turns a claim into a verified fact.
Each handler runs inside the gateway's transaction for its batch, so what it
writes is committed before the device hears the answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Connection

from attestation_server.registry import Claim, DeviceRegistry, Heartbeat
from attestation_server.trust_store import TrustStore
from device_runtime.core.errors import ProtocolError
from fleet_platform.gateway import Body, Gateway, Request


@dataclass(frozen=True, slots=True, kw_only=True)
class EnrollmentService:
    """Answers ``enroll`` and ``heartbeat`` requests."""

    registry: DeviceRegistry
    heartbeat_interval: int
    trust: TrustStore | None = None
    """With it, an enroll from a boot later than the one that earned the device's pass ends
    that pass (the device rebooted without attesting)."""

    def register(self, gateway: Gateway) -> None:
        gateway.handle_batch("enroll", self.enrollments)
        gateway.handle_batch("heartbeat", self.heartbeats)

    def enrollments(
        self, requests: Sequence[Request], tx: Connection
    ) -> list[Body | ProtocolError]:
        """Every enroll of a batch at once: a fleet that boots together enrolls together."""
        claims = [
            Claim(
                device_id=request.device_id,
                hwmodel=cast(str, request.body["hwmodel"]),
                swname=cast(str, request.body["swname"]),
                swversion=cast(str, request.body["swversion"]),
                rot_claimed=cast(str, request.body["rot"]),
                boot_count=cast(int, request.body["boot_count"]),
                at=request.received_at,
            )
            for request in requests
        ]
        outcomes = self.registry.enrollments(
            claims, heartbeat_interval=self.heartbeat_interval, tx=tx
        )
        if self.trust is not None:
            self.trust.end_passes_of_earlier_boots(
                tx, [(claim.device_id, claim.boot_count) for claim in claims]
            )
        return [
            outcome
            if isinstance(outcome, ProtocolError)
            else {
                "heartbeat_interval": self.heartbeat_interval,
                "server_time": int(request.received_at.timestamp()),
            }
            for request, outcome in zip(requests, outcomes, strict=True)
        ]

    def heartbeats(self, requests: Sequence[Request], tx: Connection) -> list[Body | ProtocolError]:
        """Every heartbeat of a batch in one write; each answered on its own merits."""
        reports = [
            Heartbeat(
                device_id=request.device_id,
                seq=cast(int, request.body["seq"]),
                uptime=cast(int, request.body["uptime"]),
                boot_count=cast(int, request.body["boot_count"]),
                at=request.received_at,
            )
            for request in requests
        ]
        refusals = self.registry.heartbeats(reports, tx=tx)
        return [
            refusal
            if refusal is not None
            else {"seq": request.body["seq"], "server_time": int(request.received_at.timestamp())}
            for request, refusal in zip(requests, refusals, strict=True)
        ]
