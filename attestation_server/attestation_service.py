"""The verifier on the wire: challenges out, evidence in, a fleet certificate for a pass.

RATS' passport model (RFC 9334): a device asks for a challenge, answers with
evidence (an EAT, docs/eat-profile.md), and a passing appraisal gets it a
fleet certificate valid for its group's policy (24 hours by default), which is
what it then presents to the broker. A device whose certificate expired, or
that never had one, still reaches these two requests with its DeviceID
certificate through the broker's recovery listener, and nothing else.

Each handler runs inside the gateway's transaction for its batch: the nonce is
consumed, the result recorded and the pass granted in one commit, and the
device hears its answer only after it.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import cast

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import Connection

from attestation_server.appraisal import AttestationResult, appraise
from attestation_server.evidence import EvidenceError, peek_nonce
from attestation_server.trust_store import TrustStore
from device_runtime.core import protocol
from fleet_platform.event_budget import OncePerWindow
from fleet_platform.gateway import Body, Gateway, Request
from fleet_platform.pki import CertificateAuthority
from fleet_platform.server_config import DEFAULT_NONCE_TTL_S

SECURITY_REPEAT_S = 600.0
"""An identical security event from one device is written once per this window: a device,
or a stranger on its topic, cannot fill the audit trail by sending the same refusal again."""


@dataclass(kw_only=True)
class AttestationService:
    """Answers ``challenge`` and ``evidence``."""

    store: TrustStore
    authority: CertificateAuthority
    manufacturer_cas: Callable[[], Sequence[x509.Certificate]]
    nonce_ttl_s: int = DEFAULT_NONCE_TTL_S
    _events: OncePerWindow = field(
        default_factory=lambda: OncePerWindow(window_s=SECURITY_REPEAT_S), init=False
    )

    def register(self, gateway: Gateway) -> None:
        gateway.handle("challenge", self.challenge)
        gateway.handle("evidence", self.evidence)

    def challenge(self, request: Request, tx: Connection) -> Body:
        nonce = secrets.token_bytes(protocol.NONCE_BYTES)
        self.store.issue_challenge(
            tx,
            device_id=request.device_id,
            nonce=nonce,
            now=request.received_at,
            ttl=timedelta(seconds=self.nonce_ttl_s),
        )
        return {"nonce": nonce, "expires_in": self.nonce_ttl_s}

    def evidence(self, request: Request, tx: Connection) -> Body:
        """Appraise, record, and for a pass issue the fleet certificate, all in *tx*."""
        device_id = request.device_id
        now = request.received_at
        token = cast(bytes, request.body["token"])
        try:
            nonce: bytes | None = peek_nonce(token)
        except EvidenceError:
            nonce = None  # the appraisal says what is wrong with the token
        challenge = (
            None
            if nonce is None
            else self.store.consume_challenge(tx, device_id=device_id, nonce=nonce)
        )
        inputs = self.store.inputs(tx, device_id)
        policy = inputs.policy
        # A challenge is answerable for the server's nonce lifetime at most, whatever the policy.
        policy = replace(
            policy, max_evidence_age_s=min(policy.max_evidence_age_s, self.nonce_ttl_s)
        )
        result = appraise(
            token=token,
            quote=cast("bytes | None", request.body.get("quote")),
            quote_signature=cast("bytes | None", request.body.get("quote_signature")),
            challenge=challenge,
            device=inputs.device,
            manufacturer_cas=self.manufacturer_cas(),
            endorsements=inputs.endorsements,
            policy=policy,
            history=inputs.history,
            now=now,
        )
        if result.status != "contraindicated" and inputs.quarantined is not None:
            return self._refused(tx, request, result, code="quarantined", reason=inputs.quarantined)
        if result.status == "contraindicated" and (
            inputs.device is None or not (result.authenticated or result.code in REGISTRY_CODES)
        ):
            return self._unauthenticated(tx, request, result)
        if result.status == "contraindicated":
            return self._refused(tx, request, result)
        assert result.certified_key is not None
        certificate = self.authority.sign_attested_key(
            result.certified_key,
            device_id=device_id,
            lifetime=timedelta(hours=policy.certificate_hours),
        )
        not_after = certificate.not_valid_after_utc
        if not self.store.accept(
            tx,
            device_id=device_id,
            result=result,
            pass_until=not_after,
            serial=format(certificate.serial_number, "x"),
            now=now,
        ):
            raced = replace(
                result,
                status="contraindicated",
                code="clone-suspected",
                reasons=("another appraisal of this device moved its counters meanwhile",),
                certified_key=None,
            )
            return self._refused(tx, request, raced)
        self.store.record(
            tx,
            device_id=device_id,
            result=result,
            via_recovery=request.via_recovery,
            certificate_not_after=not_after,
            now=now,
        )
        return {
            "status": result.status,
            "code": result.code,
            "reason": _reason(result.reasons),
            "certificate": certificate.public_bytes(Encoding.DER),
            "not_after": int(not_after.timestamp()),
            "server_time": int(now.timestamp()),
        }

    def _refused(
        self,
        tx: Connection,
        request: Request,
        result: AttestationResult,
        *,
        code: str | None = None,
        reason: str | None = None,
    ) -> Body:
        """No certificate; the pass ends, a security event says why; a clone is quarantined."""
        if code is not None:
            result = replace(
                result,
                status="contraindicated",
                code=code,
                reasons=(reason or code, *result.reasons),
                certified_key=None,
            )
        now = request.received_at
        quarantined = self.store.refuse(tx, device_id=request.device_id, result=result, now=now)
        self.store.record(
            tx,
            device_id=request.device_id,
            result=result,
            via_recovery=request.via_recovery,
            certificate_not_after=None,
            now=now,
        )
        headline = _reason(result.reasons)
        reason = ("quarantined: " if quarantined else "attestation refused: ") + headline
        if quarantined or self._events.admit((request.device_id, result.code, reason), time.time()):
            self.store.security_event(
                tx, device_id=request.device_id, code=result.code, reason=reason, now=now
            )
        return _refusal(result.code, headline, now)

    def _unauthenticated(self, tx: Connection, request: Request, result: AttestationResult) -> Body:
        """Refused evidence nothing proves came from the device (an undecodable token, an
        unknown chain, a bad signature, an id no factory provisioned): it changes nobody's
        standing, since anyone who can publish on the topic could send it; it is recorded
        once per window, as what a stranger (or a broken device) tried."""
        headline = _reason(result.reasons)
        key = (request.device_id, result.code)
        if self._events.admit(key, time.time()):
            self.store.security_event(
                tx,
                device_id=request.device_id,
                code=result.code,
                reason="unauthenticated evidence refused: " + headline,
                now=request.received_at,
            )
        return _refusal(result.code, headline, request.received_at)


REGISTRY_CODES = frozenset({"key-shared"})
"""Refusals that rest on what the registry holds, not on what the message says: they stand
whether or not the token's signature verified."""


def _refusal(code: str, headline: str, now: datetime) -> Body:
    """The ``attested`` answer to refused evidence: the verdict and why, no certificate."""
    return {
        "status": "contraindicated",
        "code": code[:32],
        "reason": headline,
        "server_time": int(now.timestamp()),
    }


def _reason(reasons: Sequence[str]) -> str:
    """The reasons as one line a device can be sent (the protocol's text limit)."""
    text = "; ".join(reasons) or "ok"
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text if len(text) <= protocol.MAX_TEXT else text[: protocol.MAX_TEXT - 3] + "..."
