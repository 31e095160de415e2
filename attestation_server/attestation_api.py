"""Operator REST routes of the verifier: standings, history, quarantine, policies, endorsements."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Response
from pydantic import BaseModel, Field

from attestation_server.attestation_policy import InvalidPolicy, Policy
from attestation_server.trust_store import (
    Appraisal,
    Standing,
    StoredReference,
    TrustError,
    TrustStore,
    UnknownDevice,
    check_group,
)
from device_runtime.core import protocol

DeviceId = Annotated[str, Path(max_length=protocol.MAX_DEVICE_ID)]
Group = Annotated[str, Path(max_length=64)]
_HEX_DIGEST = re.compile(r"^[0-9a-fA-F]{64}$")


class StandingView(BaseModel):
    device_id: str
    group: str
    status: str | None
    """Latest verdict: affirming, warning or contraindicated; null before any appraisal."""
    code: str | None
    reason: str | None
    appraised_at: datetime | None
    certificate_expires: datetime | None
    """When the fleet certificate of the last pass expires; null without a current pass."""
    holds_pass: bool
    """True while the broker grants the device its application topics."""
    quarantined_at: datetime | None
    quarantine_reason: str | None
    swversion: str | None


class AppraisalView(BaseModel):
    at: datetime
    status: str
    code: str
    reasons: list[str]
    trustworthiness: dict[str, int]
    via_recovery: bool
    certificate_expires: datetime | None


class DeviceAttestationView(BaseModel):
    standing: StandingView
    history: list[AppraisalView]


class QuarantineRequest(BaseModel):
    reason: str = Field(default="", max_length=256)


class GroupRequest(BaseModel):
    group: str = Field(max_length=64)


class EndorsementRequest(BaseModel):
    hwmodel: str = Field(max_length=64)
    component: str = Field(default="image", max_length=16)
    digest: str = Field(max_length=64, description="SHA-256, 64 hex digits")
    swversion: str | None = Field(default=None, max_length=32)
    security_version: int | None = Field(default=None, ge=0, le=0xFFFFFFFF)


class EndorsementView(BaseModel):
    id: int
    hwmodel: str
    component: str
    digest: str
    swversion: str | None
    security_version: int | None
    source: str
    created_at: datetime


class EndorsementAnswer(BaseModel):
    endorsement: EndorsementView
    created: bool


def standing_view(standing: Standing, now: datetime) -> StandingView:
    holds = standing.holds_pass(now)
    return StandingView(
        device_id=standing.device_id,
        group=standing.group,
        status=standing.status,
        code=standing.code,
        reason=standing.reason,
        appraised_at=standing.appraised_at,
        certificate_expires=standing.pass_until if holds else None,
        holds_pass=holds,
        quarantined_at=standing.quarantined_at,
        quarantine_reason=standing.quarantine_reason,
        swversion=standing.swversion,
    )


def _appraisal_view(appraisal: Appraisal) -> AppraisalView:
    return AppraisalView(
        at=appraisal.at,
        status=appraisal.status,
        code=appraisal.code,
        reasons=list(appraisal.reasons),
        trustworthiness=appraisal.trustworthiness,
        via_recovery=appraisal.via_recovery,
        certificate_expires=appraisal.certificate_not_after,
    )


def _endorsement_view(reference: StoredReference) -> EndorsementView:
    return EndorsementView(
        id=reference.id,
        hwmodel=reference.hwmodel,
        component=reference.component,
        digest=reference.digest,
        swversion=reference.swversion,
        security_version=reference.security_version,
        source=reference.source,
        created_at=reference.created_at,
    )


def router(
    *,
    store: TrustStore,
    authorized: Callable[..., None],
    request_attestation: Callable[[str], None],
    changed: Callable[[], None],
    enforced: bool = True,
) -> APIRouter:
    """Routes over *store*; *request_attestation* pushes ``attest-now`` to a device, *changed*
    tells whoever enforces passes (the broker) that a standing changed. Without *enforced*
    (no attestation gate at the broker) a quarantine is refused: it would change nothing."""
    api = APIRouter(prefix="/api/v1", tags=["attestation"], dependencies=[Depends(authorized)])

    def one(device_id: str) -> Standing:
        found = store.standings(device_id)
        if not found:
            raise HTTPException(status_code=404, detail=f"no attestation record for {device_id!r}")
        return found[0]

    def refused(exc: TrustError) -> HTTPException:
        status = 404 if isinstance(exc, UnknownDevice) else 422
        return HTTPException(status_code=status, detail=exc.explain())

    @api.get("/attestation")
    def list_standings() -> list[StandingView]:
        now = datetime.now(UTC)
        return [standing_view(standing, now) for standing in store.standings()]

    @api.get("/attestation/{device_id}")
    def get_standing(
        device_id: DeviceId, limit: Annotated[int, Query(ge=1, le=500)] = 50
    ) -> DeviceAttestationView:
        return DeviceAttestationView(
            standing=standing_view(one(device_id), datetime.now(UTC)),
            history=[_appraisal_view(a) for a in store.history(device_id, limit=limit)],
        )

    @api.post("/attestation/{device_id}/attest", status_code=202)
    def attest_now(device_id: DeviceId) -> dict[str, str]:
        """Ask the device to attest now (it answers when it next listens: at once if online)."""
        one(device_id)
        request_attestation(device_id)
        return {"requested": device_id}

    @api.post("/attestation/{device_id}/quarantine")
    def quarantine(device_id: DeviceId, body: QuarantineRequest) -> StandingView:
        if not enforced:
            raise HTTPException(
                status_code=409,
                detail="no-gate: this server's broker grants every device its topics"
                " (--no-attestation-gate), so a quarantine would not cut anything off",
            )
        try:
            store.quarantine(device_id, reason=body.reason, now=datetime.now(UTC))
        except TrustError as exc:
            raise refused(exc) from None
        changed()
        return standing_view(one(device_id), datetime.now(UTC))

    @api.post("/attestation/{device_id}/release")
    def release(device_id: DeviceId) -> StandingView:
        try:
            store.release(device_id, now=datetime.now(UTC))
        except TrustError as exc:
            raise refused(exc) from None
        changed()
        return standing_view(one(device_id), datetime.now(UTC))

    @api.put("/attestation/{device_id}/group")
    def assign_group(device_id: DeviceId, body: GroupRequest) -> StandingView:
        try:
            store.assign_group(device_id, body.group)
        except TrustError as exc:
            raise refused(exc) from None
        return standing_view(one(device_id), datetime.now(UTC))

    @api.get("/policies")
    def list_policies() -> dict[str, dict[str, Any]]:
        return {group: policy.to_dict() for group, policy in store.policies().items()}

    @api.get("/policies/{group}")
    def get_policy(group: Group) -> dict[str, Any]:
        return store.policies().get(group, Policy()).to_dict()

    @api.put("/policies/{group}")
    def set_policy(group: Group, body: dict[str, Any]) -> dict[str, Any]:
        """Change the settings given; the rest keep their current values."""
        try:
            check_group(group)
            current = store.policies().get(group, Policy()).to_dict()
            policy = Policy.from_dict({**current, **body})
        except (TrustError, InvalidPolicy) as exc:
            raise HTTPException(status_code=422, detail=exc.explain()) from None
        store.set_policy(group, policy, now=datetime.now(UTC))
        return policy.to_dict()

    @api.get("/endorsements")
    def list_endorsements(
        hwmodel: Annotated[str | None, Query(max_length=64)] = None,
    ) -> list[EndorsementView]:
        return [_endorsement_view(r) for r in store.references(hwmodel)]

    @api.post("/endorsements")
    def endorse(body: EndorsementRequest, response: Response) -> EndorsementAnswer:
        if not _HEX_DIGEST.fullmatch(body.digest):
            raise HTTPException(status_code=422, detail="digest must be 64 hex digits (SHA-256)")
        try:
            reference_id, created = store.endorse(
                hwmodel=body.hwmodel,
                component=body.component,
                digest=bytes.fromhex(body.digest),
                swversion=body.swversion,
                security_version=body.security_version,
                source="operator",
                now=datetime.now(UTC),
            )
        except TrustError as exc:
            raise HTTPException(status_code=422, detail=exc.explain()) from None
        response.status_code = 201 if created else 200
        stored = next(r for r in store.references(body.hwmodel) if r.id == reference_id)
        return EndorsementAnswer(endorsement=_endorsement_view(stored), created=created)

    @api.delete("/endorsements/{reference_id}", status_code=204)
    def withdraw(reference_id: int) -> None:
        if not store.withdraw(reference_id):
            raise HTTPException(status_code=404, detail=f"no endorsement {reference_id}")

    return api
