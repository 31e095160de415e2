"""Enrollment and liveness: the device registry's view of the fleet.

Enrollment here records what a device says about itself under the identity its
certificate proves; attestation (evidence, verification, short-lived fleet
certificates) builds on this record.
"""

from __future__ import annotations

from dataclasses import dataclass

from attestation_server.registry import DeviceRegistry
from device_runtime.core.errors import InvalidField
from fleet_platform.gateway import Body, Gateway, Request


@dataclass(frozen=True, slots=True, kw_only=True)
class EnrollmentService:
    """Answers ``enroll`` and ``heartbeat`` requests."""

    registry: DeviceRegistry
    heartbeat_interval: int

    def register(self, gateway: Gateway) -> None:
        gateway.handle("enroll", self.enroll)
        gateway.handle("heartbeat", self.heartbeat)

    def enroll(self, request: Request) -> Body:
        body = request.body
        if body["rot"] not in ("software", "tpm", "dice"):
            raise InvalidField(f"unknown root of trust {body['rot']!r}")
        self.registry.enroll(
            request.device_id,
            hwmodel=body["hwmodel"],
            swname=body["swname"],
            swversion=body["swversion"],
            rot=body["rot"],
            boot_count=body["boot_count"],
            heartbeat_interval=self.heartbeat_interval,
            cert_fingerprint=None,
            now=request.received_at,
        )
        return {
            "heartbeat_interval": self.heartbeat_interval,
            "server_time": int(request.received_at.timestamp()),
        }

    def heartbeat(self, request: Request) -> Body:
        body = request.body
        known = self.registry.get(request.device_id)
        if (
            known is not None
            and known.boot_count == body["boot_count"]
            and known.last_seq is not None
            and body["seq"] <= known.last_seq
        ):
            raise InvalidField(
                f"heartbeat {body['seq']} is not after {known.last_seq} in boot {known.boot_count}:"
                " replayed or reordered"
            )
        self.registry.heartbeat(
            request.device_id,
            seq=body["seq"],
            uptime=body["uptime"],
            boot_count=body["boot_count"],
            now=request.received_at,
        )
        return {"seq": body["seq"], "server_time": int(request.received_at.timestamp())}
