"""The verifier's state: challenges, each device's standing, history, reference values, policies.

Every write that decides something is one conditional statement judged by its
row count, so two copies of one piece of evidence, two replicas or a power cut
between statements can never leave a nonce used twice, a pass granted to a
quarantined device, or counters that went back. The appraisal itself is pure
(:mod:`attestation_server.appraisal`); this module only reads its inputs and
writes its outcome.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    Connection,
    Table,
    Update,
    and_,
    bindparam,
    delete,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.elements import BindParameter

from attestation_server.appraisal import (
    AttestationResult,
    Challenge,
    Endorsement,
    History,
    ProvenDevice,
)
from attestation_server.attestation_policy import Policy
from attestation_server.tables import (
    AttestationChallenge,
    AttestationPolicyRecord,
    AttestationRecord,
    DeviceEvent,
    DeviceTrust,
    ProvisionedDevice,
    ReferenceValue,
)
from device_runtime.core.errors import SevenfoldError
from fleet_platform.storage import Database
from fleet_platform.storage.timestamps import require_aware

_CHALLENGES = cast(Table, AttestationChallenge.__table__)
_TRUST = cast(Table, DeviceTrust.__table__)
_RESULTS = cast(Table, AttestationRecord.__table__)
_REFERENCES = cast(Table, ReferenceValue.__table__)
_POLICIES = cast(Table, AttestationPolicyRecord.__table__)
_PROVISIONED = cast(Table, ProvisionedDevice.__table__)
_EVENTS = cast(Table, DeviceEvent.__table__)

DEFAULT_GROUP = "default"
HISTORY_RETENTION = timedelta(days=90)
"""How long each appraisal is kept in the history (security events are kept a year)."""
GROUP = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
"""Device group names: they appear in commands and URLs, so they stay plain."""
SECURITY = "security"
CLONE_CODES = frozenset({"boot-regressed", "clone-suspected", "key-shared"})
"""Results that quarantine a device until an operator releases it: another device may be
using its identity, so a later passing appraisal proves nothing about which one passed."""

# Every attestation runs the statements below (a challenge, then evidence): built once,
# with bound parameters, they skip SQLAlchemy's statement construction and cache-key
# computation, which cost more than the database itself on SQLite.
MAX_OUTSTANDING = 4
"""Challenges a device may have outstanding: a few, so that a late or duplicated request
for one (from another gateway, or a stranger on the recovery listener) cannot void the
nonce the device is answering, and few enough that the table stays as small as the fleet."""
_DROP_CHALLENGES = delete(_CHALLENGES).where(
    _CHALLENGES.c.device_id == bindparam("p_device_id"),
    _CHALLENGES.c.nonce.not_in(
        select(_CHALLENGES.c.nonce)
        .where(_CHALLENGES.c.device_id == bindparam("p_device_id"))
        .order_by(_CHALLENGES.c.issued_at.desc())
        .limit(MAX_OUTSTANDING - 1)
    ),
)
_ADD_CHALLENGE = insert(_CHALLENGES)
_CONSUME_CHALLENGE = (
    delete(_CHALLENGES)
    .where(
        _CHALLENGES.c.nonce == bindparam("p_nonce"),
        _CHALLENGES.c.device_id == bindparam("p_device_id"),
    )
    .returning(_CHALLENGES.c.issued_at)
)
_PROVEN = select(_PROVISIONED).where(_PROVISIONED.c.device_id == bindparam("p_device_id"))
_SHARING_KEY = select(_PROVISIONED.c.device_id).where(
    _PROVISIONED.c.public_key == bindparam("p_public_key"),
    _PROVISIONED.c.device_id != bindparam("p_device_id"),
)
_ENDORSED = select(_REFERENCES).where(_REFERENCES.c.hwmodel == bindparam("p_hwmodel"))
_STANDING = select(_TRUST).where(_TRUST.c.device_id == bindparam("p_device_id"))
_GROUP_POLICY = select(_POLICIES.c.group_name, _POLICIES.c.policy).where(
    _POLICIES.c.group_name.in_([bindparam("p_group"), bindparam("p_default")])
)
_ADD_RESULT = insert(_RESULTS)
_END_EARLIER_BOOT = (
    update(_TRUST)
    .where(
        _TRUST.c.device_id == bindparam("p_device_id"),
        _TRUST.c.bootcount < bindparam("p_boot_count"),
        _TRUST.c.pass_until.is_not(None),
    )
    .values(pass_until=None)
)


def _accept_statement(*, tpm: bool) -> Update:
    """The conditional write of a pass: only if no fresher appraisal moved the counters and
    the device is not quarantined (with a TPM, its clock must not have gone back either)."""
    c = _TRUST.c
    bootcount: BindParameter[Any] = bindparam("p_bootcount")
    bootseed: BindParameter[Any] = bindparam("p_bootseed")
    conditions = [
        c.device_id == bindparam("p_device_id"),
        c.quarantined_at.is_(None),
        or_(
            c.bootcount.is_(None),
            c.bootcount < bootcount,
            and_(c.bootcount == bootcount, c.bootseed == bootseed),
        ),
    ]
    values: dict[str, BindParameter[Any]] = {
        name: bindparam(f"p_{name}")
        for name in (
            "status", "code", "reason", "appraised_at", "pass_until", "certificate_serial",
            "swversion", "image_digest",
        )
    }  # fmt: skip
    values.update(bootcount=bootcount, bootseed=bootseed)
    if tpm:
        reset_count: BindParameter[Any] = bindparam("p_tpm_reset_count")
        clock: BindParameter[Any] = bindparam("p_tpm_clock")
        conditions.append(
            or_(
                c.tpm_reset_count.is_(None),
                c.tpm_reset_count < reset_count,
                and_(c.tpm_reset_count == reset_count, c.tpm_clock <= clock),
            )
        )
        values.update(tpm_reset_count=reset_count, tpm_clock=clock)
    return update(_TRUST).where(*conditions).values(**values)


_ACCEPT = _accept_statement(tpm=False)
_ACCEPT_TPM = _accept_statement(tpm=True)


class TrustError(SevenfoldError):
    """An operator's request about attestation state cannot be done as asked."""

    code = "trust"


class UnknownDevice(TrustError):
    code = "unknown-device"


def check_group(group: str) -> str:
    if not isinstance(group, str) or not GROUP.fullmatch(group):
        raise TrustError(f"group {group!r} must be 1-64 lowercase letters, digits, '.', '_' or '-'")
    return group


@dataclass(frozen=True, slots=True, kw_only=True)
class Standing:
    """A device's standing with the verifier, as operators see it."""

    device_id: str
    group: str
    status: str | None
    code: str | None
    reason: str | None
    appraised_at: datetime | None
    pass_until: datetime | None
    quarantined_at: datetime | None
    quarantine_reason: str | None
    swversion: str | None

    def holds_pass(self, now: datetime) -> bool:
        return (
            self.pass_until is not None
            and self.pass_until > now
            and self.quarantined_at is None
            and self.status != "contraindicated"
        )

    @classmethod
    def from_row(cls, row: Any) -> Standing:
        return cls(
            device_id=row["device_id"],
            group=row["group_name"],
            status=row["status"],
            code=row["code"],
            reason=row["reason"],
            appraised_at=row["appraised_at"],
            pass_until=row["pass_until"],
            quarantined_at=row["quarantined_at"],
            quarantine_reason=row["quarantine_reason"],
            swversion=row["swversion"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Appraisal:
    """One stored appraisal."""

    device_id: str
    at: datetime
    status: str
    code: str
    reasons: tuple[str, ...]
    trustworthiness: dict[str, int]
    via_recovery: bool
    certificate_not_after: datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredReference:
    id: int
    hwmodel: str
    component: str
    digest: str
    swversion: str | None
    security_version: int | None
    source: str
    created_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class Inputs:
    """What the store knows that an appraisal needs, read in the evidence's transaction."""

    device: ProvenDevice | None
    endorsements: tuple[Endorsement, ...]
    policy: Policy
    history: History
    quarantined: str | None
    """The quarantine reason, when the device is quarantined."""


class TrustStore:
    """Reads and conditional writes on the verifier's tables."""

    def __init__(self, *, database: Database) -> None:
        self._database = database
        dialect = sqlite if database.dialect == "sqlite" else postgresql
        self._ensure_trust = dialect.insert(_TRUST).on_conflict_do_nothing(
            index_elements=[_TRUST.c.device_id]
        )
        self._add_reference = (
            dialect.insert(_REFERENCES)
            .on_conflict_do_nothing(
                index_elements=[
                    _REFERENCES.c.hwmodel,
                    _REFERENCES.c.component,
                    _REFERENCES.c.digest,
                ]
            )
            .returning(_REFERENCES.c.id)
        )
        self._upsert_policy = dialect.insert(_POLICIES)
        self._upsert_policy = self._upsert_policy.on_conflict_do_update(
            index_elements=[_POLICIES.c.group_name],
            set_={
                "policy": self._upsert_policy.excluded.policy,
                "updated_at": self._upsert_policy.excluded.updated_at,
            },
        )

    @contextmanager
    def _in(self, tx: Connection | None, operation: str) -> Iterator[Connection]:
        if tx is not None:
            yield tx
            return
        with self._database.transaction(operation) as connection:
            yield connection

    # -- challenges ------------------------------------------------------------------

    def issue_challenge(
        self, tx: Connection, *, device_id: str, nonce: bytes, now: datetime, ttl: timedelta
    ) -> None:
        """Store *nonce* for *device_id*, keeping its newest MAX_OUTSTANDING - 1 besides."""
        tx.execute(_DROP_CHALLENGES, {"p_device_id": device_id})
        tx.execute(
            _ADD_CHALLENGE,
            {"nonce": nonce.hex(), "device_id": device_id, "issued_at": now,
             "expires_at": now + ttl},
        )  # fmt: skip

    def consume_challenge(
        self, tx: Connection, *, device_id: str, nonce: bytes
    ) -> Challenge | None:
        """The challenge *nonce* answers, removed in the same statement: a nonce answers once.

        An expired one is returned too (the appraisal judges its age, with a
        reason), so a late answer is told it was late rather than unknown.
        """
        row = tx.execute(
            _CONSUME_CHALLENGE, {"p_nonce": nonce.hex(), "p_device_id": device_id}
        ).first()
        return None if row is None else Challenge(nonce=nonce, issued_at=row[0])

    def prune_history(self, now: datetime, *, keep: timedelta = HISTORY_RETENTION) -> int:
        """Appraisals older than *keep* go: each device's standing keeps what still matters."""
        with self._in(None, "prune attestation history") as tx:
            return tx.execute(delete(_RESULTS).where(_RESULTS.c.at < now - keep)).rowcount

    def prune_challenges(self, now: datetime) -> int:
        with self._in(None, "prune expired challenges") as tx:
            return tx.execute(delete(_CHALLENGES).where(_CHALLENGES.c.expires_at < now)).rowcount

    # -- inputs ----------------------------------------------------------------------

    def inputs(self, tx: Connection, device_id: str) -> Inputs:
        proven = tx.execute(_PROVEN, {"p_device_id": device_id}).mappings().one_or_none()
        device: ProvenDevice | None = None
        endorsements: tuple[Endorsement, ...] = ()
        if proven is not None:
            sharing = tx.execute(
                _SHARING_KEY, {"p_public_key": proven["public_key"], "p_device_id": device_id}
            ).scalars()
            quote_key = proven.get("quote_key")
            device = ProvenDevice(
                device_id=device_id,
                hwmodel=proven["hwmodel"],
                rot_kind=proven["rot_kind"],
                deviceid_key=bytes.fromhex(proven["public_key"]),
                quote_key=bytes.fromhex(quote_key) if quote_key else None,
                other_ids_with_key=tuple(sorted(sharing)),
            )
            endorsements = tuple(
                Endorsement(
                    hwmodel=row["hwmodel"],
                    component=row["component"],
                    digest=bytes.fromhex(row["digest"]),
                    swversion=row["swversion"],
                    security_version=row["security_version"],
                )
                for row in tx.execute(_ENDORSED, {"p_hwmodel": proven["hwmodel"]}).mappings()
            )
        if device is None:
            # Nothing is stored for an id no factory provisioned: it has no standing to change.
            return Inputs(
                device=None,
                endorsements=(),
                policy=self._policy(tx, DEFAULT_GROUP),
                history=History(
                    bootcount=None, bootseed=None, tpm_reset_count=None, tpm_clock=None
                ),
                quarantined=None,
            )
        tx.execute(self._ensure_trust, {"device_id": device_id, "group_name": DEFAULT_GROUP})
        trust = tx.execute(_STANDING, {"p_device_id": device_id}).mappings().one()
        return Inputs(
            device=device,
            endorsements=endorsements,
            policy=self._policy(tx, trust["group_name"]),
            history=History(
                bootcount=trust["bootcount"],
                bootseed=bytes.fromhex(trust["bootseed"]) if trust["bootseed"] else None,
                tpm_reset_count=trust["tpm_reset_count"],
                tpm_clock=trust["tpm_clock"],
            ),
            quarantined=trust["quarantine_reason"] if trust["quarantined_at"] else None,
        )

    def _policy(self, tx: Connection, group: str) -> Policy:
        """The group's policy; a group with none stored follows ``default``'s, stored or built
        in, so a new or mistyped group never weakens what the operator hardened."""
        rows = tx.execute(_GROUP_POLICY, {"p_group": group, "p_default": DEFAULT_GROUP})
        stored: dict[str, str] = {name: policy for name, policy in rows}
        chosen = stored.get(group, stored.get(DEFAULT_GROUP))
        return Policy() if chosen is None else Policy.from_dict(json.loads(chosen))

    # -- outcome ---------------------------------------------------------------------

    def accept(
        self,
        tx: Connection,
        *,
        device_id: str,
        result: AttestationResult,
        pass_until: datetime,
        serial: str,
        now: datetime,
    ) -> bool:
        """Record a passing appraisal and its pass, if the counters it saw are still the latest.

        False when another appraisal of this device moved the boot or TPM
        counters past these since the appraisal's inputs were read, or the
        device was quarantined meanwhile: the caller then refuses, as a clone.
        """
        claims = result.claims
        assert claims is not None
        values: dict[str, Any] = {
            "p_device_id": device_id,
            "p_status": result.status,
            "p_code": result.code,
            "p_reason": "; ".join(result.reasons),
            "p_appraised_at": now,
            "p_pass_until": pass_until,
            "p_certificate_serial": serial,
            "p_bootcount": claims.bootcount,
            "p_bootseed": claims.bootseed.hex(),
            "p_swversion": claims.swversion,
            "p_image_digest": claims.image_digest.hex(),
        }
        statement = _ACCEPT
        if result.tpm_clock is not None:
            values["p_tpm_reset_count"], values["p_tpm_clock"] = result.tpm_clock
            statement = _ACCEPT_TPM
        return tx.execute(statement, values).rowcount == 1

    def refuse(
        self, tx: Connection, *, device_id: str, result: AttestationResult, now: datetime
    ) -> bool:
        """Record a contraindicated appraisal: the pass ends now; a clone is quarantined.

        True when this quarantined the device (it was not already).
        """
        c = _TRUST.c
        reason = "; ".join(result.reasons)
        tx.execute(
            update(_TRUST)
            .where(c.device_id == device_id)
            .values(status=result.status, code=result.code, reason=reason, appraised_at=now,
                    pass_until=None)
        )  # fmt: skip
        if result.code not in CLONE_CODES:
            return False
        return (
            tx.execute(
                update(_TRUST)
                .where(c.device_id == device_id, c.quarantined_at.is_(None))
                .values(quarantined_at=now, quarantine_reason=f"{result.code}: {reason}")
            ).rowcount
            == 1
        )

    def record(
        self,
        tx: Connection,
        *,
        device_id: str,
        result: AttestationResult,
        via_recovery: bool,
        certificate_not_after: datetime | None,
        now: datetime,
    ) -> None:
        tx.execute(
            _ADD_RESULT,
            {
                "device_id": device_id,
                "at": now,
                "status": result.status,
                "code": result.code,
                "reasons": json.dumps(list(result.reasons)),
                "trustworthiness": json.dumps(dict(result.trustworthiness), sort_keys=True),
                "via_recovery": via_recovery,
                "certificate_not_after": certificate_not_after,
            },
        )

    def security_event(
        self, tx: Connection, *, device_id: str, code: str, reason: str, now: datetime
    ) -> None:
        tx.execute(
            insert(_EVENTS).values(
                device_id=device_id, at=now, kind=SECURITY, code=code, reason=reason[:1000]
            )
        )

    def end_passes_of_earlier_boots(self, tx: Connection, boots: Sequence[tuple[str, int]]) -> int:
        """A device that enrolls with a boot count above its pass's rebooted without
        attesting: the pass was earned by another boot, perhaps of other firmware, so it
        ends. ``boots`` is (device id, boot count) per enroll; returns how many ended."""
        ended = 0
        for device_id, boot_count in boots:
            ended += tx.execute(
                _END_EARLIER_BOOT, {"p_device_id": device_id, "p_boot_count": boot_count}
            ).rowcount
        return ended

    # -- the broker's view -----------------------------------------------------------

    def granted(self, now: datetime) -> list[str]:
        """Devices that hold the application plane now: a current pass, not quarantined."""
        return [device_id for device_id, _ in self.passes(now)]

    def passes(self, now: datetime) -> list[tuple[str, datetime]]:
        """``(device id, until when)`` of every current pass, by device id."""
        c = _TRUST.c
        with self._in(None, "read granted devices") as tx:
            rows = tx.execute(
                select(c.device_id, c.pass_until)
                .where(
                    c.pass_until > now,
                    c.quarantined_at.is_(None),
                    c.status != "contraindicated",
                )
                .order_by(c.device_id)
            )
            return [(device_id, until) for device_id, until in rows]

    # -- operators -------------------------------------------------------------------

    def standings(self, device_id: str | None = None) -> list[Standing]:
        query = select(_TRUST).order_by(_TRUST.c.device_id)
        if device_id is not None:
            query = query.where(_TRUST.c.device_id == device_id)
        with self._in(None, "read attestation standings") as tx:
            return [Standing.from_row(row) for row in tx.execute(query).mappings()]

    def history(self, device_id: str, *, limit: int = 50) -> list[Appraisal]:
        query = (
            select(_RESULTS)
            .where(_RESULTS.c.device_id == device_id)
            .order_by(_RESULTS.c.at.desc(), _RESULTS.c.id.desc())
            .limit(limit)
        )
        with self._in(None, "read attestation history") as tx:
            return [
                Appraisal(
                    device_id=row["device_id"],
                    at=row["at"],
                    status=row["status"],
                    code=row["code"],
                    reasons=tuple(json.loads(row["reasons"])),
                    trustworthiness=json.loads(row["trustworthiness"]),
                    via_recovery=row["via_recovery"],
                    certificate_not_after=row["certificate_not_after"],
                )
                for row in tx.execute(query).mappings()
            ]

    def _known(self, tx: Connection, device_id: str) -> None:
        """Only provisioned devices have a standing an operator can change."""
        found = tx.execute(
            select(_PROVISIONED.c.device_id).where(_PROVISIONED.c.device_id == device_id)
        ).first()
        if found is None:
            raise UnknownDevice(f"no provisioned device {device_id!r}")
        tx.execute(self._ensure_trust, {"device_id": device_id, "group_name": DEFAULT_GROUP})

    def quarantine(self, device_id: str, *, reason: str, now: datetime) -> bool:
        """Cut *device_id* off until released; False if it already was."""
        at = require_aware(now, name="now")
        reason = reason.strip() or "quarantined by an operator"
        with self._in(None, "quarantine a device") as tx:
            self._known(tx, device_id)
            done = tx.execute(
                update(_TRUST)
                .where(_TRUST.c.device_id == device_id, _TRUST.c.quarantined_at.is_(None))
                .values(quarantined_at=at, quarantine_reason=f"operator: {reason}")
            ).rowcount
            if done:
                self.security_event(
                    tx, device_id=device_id, code="quarantined", reason=reason, now=at
                )
            return done == 1

    def release(self, device_id: str, *, now: datetime) -> bool:
        """Lift a quarantine; the device must then pass an appraisal to hold a pass again."""
        at = require_aware(now, name="now")
        with self._in(None, "release a device") as tx:
            self._known(tx, device_id)
            done = tx.execute(
                update(_TRUST)
                .where(_TRUST.c.device_id == device_id, _TRUST.c.quarantined_at.is_not(None))
                .values(quarantined_at=None, quarantine_reason=None, pass_until=None)
            ).rowcount
            if done:
                self.security_event(
                    tx, device_id=device_id, code="released", reason="released by an operator",
                    now=at,
                )  # fmt: skip
            return done == 1

    def assign_group(self, device_id: str, group: str) -> None:
        check_group(group)
        with self._in(None, "assign a device group") as tx:
            self._known(tx, device_id)
            tx.execute(
                update(_TRUST).where(_TRUST.c.device_id == device_id).values(group_name=group)
            )

    def policies(self) -> dict[str, Policy]:
        """Every group's policy; ``default`` is always there (stored or built in)."""
        with self._in(None, "read policies") as tx:
            found = {
                row["group_name"]: Policy.from_dict(json.loads(row["policy"]))
                for row in tx.execute(select(_POLICIES)).mappings()
            }
        found.setdefault(DEFAULT_GROUP, Policy())
        return dict(sorted(found.items()))

    def set_policy(self, group: str, policy: Policy, *, now: datetime) -> None:
        check_group(group)
        with self._in(None, "set a policy") as tx:
            tx.execute(
                self._upsert_policy.values(
                    group_name=group,
                    policy=json.dumps(policy.to_dict(), sort_keys=True),
                    updated_at=require_aware(now, name="now"),
                )
            )

    def endorse(
        self,
        *,
        hwmodel: str,
        component: str,
        digest: bytes,
        swversion: str | None,
        security_version: int | None,
        source: str,
        now: datetime,
    ) -> tuple[int, bool]:
        """Register a reference value; ``(id, created)`` (False when it was already there)."""
        if component not in ("image", "config"):
            raise TrustError("component must be 'image' or 'config'")
        if len(digest) != 32:
            raise TrustError("a reference value is a SHA-256 digest (32 bytes, 64 hex digits)")
        if not hwmodel or len(hwmodel) > 64 or not hwmodel.isprintable():
            raise TrustError("hardware model must be 1-64 printable characters")
        if swversion is not None and (len(swversion) > 32 or not swversion.isprintable()):
            raise TrustError("software version must be at most 32 printable characters")
        if security_version is not None and not 0 <= security_version <= 0xFFFFFFFF:
            raise TrustError("security version must be 0 to 4294967295")
        values = {
            "hwmodel": hwmodel,
            "component": component,
            "digest": digest.hex(),
            "swversion": swversion,
            "security_version": security_version,
            "source": source,
            "created_at": require_aware(now, name="now"),
        }
        with self._in(None, "endorse a measurement") as tx:
            created = tx.execute(self._add_reference.values(values)).first()
            if created is not None:
                return int(created[0]), True
            known = tx.execute(
                select(_REFERENCES.c.id).where(
                    _REFERENCES.c.hwmodel == hwmodel,
                    _REFERENCES.c.component == component,
                    _REFERENCES.c.digest == digest.hex(),
                )
            ).scalar_one()
            return int(known), False

    def references(self, hwmodel: str | None = None) -> list[StoredReference]:
        query = select(_REFERENCES).order_by(_REFERENCES.c.hwmodel, _REFERENCES.c.id)
        if hwmodel is not None:
            query = query.where(_REFERENCES.c.hwmodel == hwmodel)
        with self._in(None, "read reference values") as tx:
            return [StoredReference(**dict(row)) for row in tx.execute(query).mappings()]

    def withdraw(self, reference_id: int) -> bool:
        with self._in(None, "withdraw a reference value") as tx:
            return (
                tx.execute(delete(_REFERENCES).where(_REFERENCES.c.id == reference_id)).rowcount
                == 1
            )
