"""Operator REST routes of the attestation server: the fleet's devices and events."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel

from attestation_server.attestation_api import StandingView, standing_view
from attestation_server.provisioning import ProvenRecord, ProvisioningRegistry
from attestation_server.records import DeviceRecord, EventRecord
from attestation_server.registry import DeviceRegistry
from attestation_server.trust_store import Standing, TrustStore


class ProvenView(BaseModel):
    rot_kind: str
    hwmodel: str
    public_key: str
    """The DeviceID key, an uncompressed P-256 point in hex."""
    station: str
    provisioned_at: datetime


class DeviceView(BaseModel):
    device_id: str
    status: str
    rot_claimed: str
    """The root of trust the device says it has; nobody has checked."""
    rot_verified: str | None
    """The root of trust attestation proved; null until it has."""
    hwmodel: str
    """The hardware model the device says it is."""
    proven: ProvenView | None
    """What factory provisioning proved (kind, model, DeviceID key); null if never provisioned."""
    swname: str
    swversion: str
    boot_count: int
    last_seq: int | None
    enrolled_at: datetime
    last_seen: datetime
    attestation: StandingView | None = None
    """The verifier's latest verdict, its reasons and the fleet certificate's expiry."""


class EventView(BaseModel):
    device_id: str | None
    at: datetime
    kind: str
    code: str | None
    reason: str | None


def _proven_view(proven: ProvenRecord | None) -> ProvenView | None:
    if proven is None:
        return None
    return ProvenView(
        rot_kind=proven.rot_kind,
        hwmodel=proven.hwmodel,
        public_key=proven.public_key,
        station=proven.station,
        provisioned_at=proven.provisioned_at,
    )


def _device_view(
    record: DeviceRecord,
    now: datetime,
    proven: ProvenRecord | None = None,
    standing: Standing | None = None,
) -> DeviceView:
    return DeviceView(
        device_id=record.device_id,
        status=record.status(now),
        rot_claimed=record.rot_claimed,
        rot_verified=record.rot_verified,
        hwmodel=record.hwmodel,
        proven=_proven_view(proven),
        swname=record.swname,
        swversion=record.swversion,
        boot_count=record.boot_count,
        last_seq=record.last_seq,
        enrolled_at=record.enrolled_at,
        last_seen=record.last_seen,
        attestation=None if standing is None else standing_view(standing, now),
    )


def _event_view(record: EventRecord) -> EventView:
    return EventView(
        device_id=record.device_id,
        at=record.at,
        kind=record.kind,
        code=record.code,
        reason=record.reason,
    )


def router(
    *,
    registry: DeviceRegistry,
    authorized: Callable[..., None],
    provisioning: ProvisioningRegistry | None = None,
    trust: TrustStore | None = None,
) -> APIRouter:
    """Routes bound to *registry*; *authorized* is the operator-token dependency.

    With *provisioning*, each device carries what its factory provisioning
    proved beside what it claims; enrollment never writes those values.
    """

    def proven(device_ids: list[str]) -> dict[str, ProvenRecord]:
        return {} if provisioning is None else provisioning.proven(device_ids)

    def standings(device_id: str | None = None) -> dict[str, Standing]:
        found = [] if trust is None else trust.standings(device_id)
        return {standing.device_id: standing for standing in found}

    api = APIRouter(prefix="/api/v1", tags=["devices"], dependencies=[Depends(authorized)])

    @api.get("/devices")
    def list_devices() -> list[DeviceView]:
        now = datetime.now(UTC)
        records = registry.list_devices()
        known = proven([record.device_id for record in records])
        trusted = standings()
        return [
            _device_view(record, now, known.get(record.device_id), trusted.get(record.device_id))
            for record in records
        ]

    @api.get("/devices/{device_id}")
    def get_device(device_id: str) -> DeviceView:
        record = registry.get(device_id)
        if record is None:
            raise HTTPException(status_code=404, detail=f"no device {device_id!r}")
        return _device_view(
            record,
            datetime.now(UTC),
            proven([device_id]).get(device_id),
            standings(device_id).get(device_id),
        )

    @api.get("/events")
    def list_events(limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[EventView]:
        return [_event_view(record) for record in registry.events(limit=limit)]

    return api
