"""The verifier: judges one device's evidence against what is known of it, as a pure function.

:func:`appraise` takes everything it needs as arguments (the token, a TPM's
quote, the challenge the server found for the token's nonce, what provisioning
proved about the device, the manufacturer CAs, the operator's endorsements and
policy, what the device's last accepted evidence said, and the time) and reads
nothing else: no clock, no database, no file. The same inputs always give the
same result, which is what makes the judgement testable and auditable.

It never raises for bad evidence. Every refusal is a result with status
``contraindicated``, the ``code`` of the first check that failed and a reason
naming what was wrong; the checks run in a fixed order (``docs/eat-profile.md``
"Judgement") so a token with several faults always reports the same one. The
result follows EAR (draft-ietf-rats-ear): a status and an AR4SI
trustworthiness vector, serialised by :meth:`AttestationResult.ear`.

Certificate checks are cached per (issuer, subject) certificate pair: both are
parsed from immutable DER, so a signature that verified once verifies always,
and a fleet re-attesting every few minutes does not pay for its chain each time.
Validity periods are never cached: they depend on ``now``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import NameOID

from attestation_server import evidence
from attestation_server.attestation_policy import Policy
from attestation_server.evidence import Claims, Evidence, EvidenceError
from device_runtime.core import der, der_parser
from device_runtime.core.errors import CryptoError
from device_runtime.core.evidence import PROFILE
from device_runtime.rot.certificates import OID_SHA256, OID_TCB_INFO
from fleet_platform.storage.timestamps import require_aware

AFFIRMING = "affirming"
WARNING = "warning"
CONTRAINDICATED = "contraindicated"

TIER_NONE = 0
TIER_AFFIRMING = 2
TIER_WARNING = 32
TIER_CONTRAINDICATED = 96

INSTANCE_IDENTITY = "instance-identity"
CONFIGURATION = "configuration"
EXECUTABLES = "executables"
HARDWARE = "hardware"
TRUSTWORTHINESS_CLAIMS = (INSTANCE_IDENTITY, CONFIGURATION, EXECUTABLES, HARDWARE)
"""The AR4SI claims this verifier has grounds for; it makes no runtime-opaque claim (no
device here runs its code encrypted), so that one is absent, which EAR reads as tier 0."""

EAR_PROFILE = "tag:github.com,2023:veraison/ear"
VERIFIER_ID = {"developer": "sevenfold", "build": "attestation_server.appraisal/eat-profile-1"}
SUBMODULE = "sevenfold"

IMAGE = "image"
CONFIG = "config"
QUOTED_REGISTERS = (0, 1)
"""Measurement registers the image and the configuration are extended into (PCRs 8 and 9)."""
CACHE_SIZE = 4096
"""Certificate pairs remembered: a fleet's DeviceID certificates and their Alias certificates."""

_CLAIM_OF = {
    **dict.fromkeys(evidence.CODES, INSTANCE_IDENTITY),
    "not-provisioned": INSTANCE_IDENTITY,
    "key-shared": INSTANCE_IDENTITY,
    "kind-mismatch": HARDWARE,
    "rot-not-allowed": HARDWARE,
    "bad-chain": INSTANCE_IDENTITY,
    "unknown-ca": INSTANCE_IDENTITY,
    "expired-certificate": INSTANCE_IDENTITY,
    "not-registered-deviceid": INSTANCE_IDENTITY,
    "name-mismatch": INSTANCE_IDENTITY,
    "alias-not-issued": INSTANCE_IDENTITY,
    "tcb-mismatch": EXECUTABLES,
    "bad-signature": INSTANCE_IDENTITY,
    "unknown-nonce": INSTANCE_IDENTITY,
    "stale-evidence": INSTANCE_IDENTITY,
    "ueid-mismatch": INSTANCE_IDENTITY,
    "hwmodel-mismatch": HARDWARE,
    "bad-profile": INSTANCE_IDENTITY,
    "debug-enabled": CONFIGURATION,
    "svn-too-low": EXECUTABLES,
    "unendorsed-image": EXECUTABLES,
    "version-mismatch": EXECUTABLES,
    "svn-mismatch": EXECUTABLES,
    "unendorsed-config": CONFIGURATION,
    "quote-missing": EXECUTABLES,
    "quote-unverifiable": EXECUTABLES,
    "bad-quote": EXECUTABLES,
    "boot-regressed": INSTANCE_IDENTITY,
    "clone-suspected": INSTANCE_IDENTITY,
    "tpm-reset-regressed": HARDWARE,
    "tpm-clock-regressed": HARDWARE,
}
"""Which AR4SI claim each refusal contraindicates; a token that does not decode
(an :data:`evidence.CODES` code) contraindicates the instance identity."""
CODES = ("ok", *_CLAIM_OF)


@dataclass(frozen=True, slots=True, kw_only=True)
class Challenge:
    """The outstanding challenge the server found, and consumed, for the token's nonce."""

    nonce: bytes
    issued_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class ProvenDevice:
    """What provisioning proved about a device."""

    device_id: str
    hwmodel: str
    rot_kind: str
    deviceid_key: bytes
    """SEC1 uncompressed point (65 bytes) of the DeviceID key registered at provisioning."""
    quote_key: bytes | None
    """TPM2B_PUBLIC of the TPM's restricted quote key (TPM devices only)."""
    other_ids_with_key: tuple[str, ...] = ()
    """Other device ids registered with the same DeviceID key: one key, two ids is a clone."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Endorsement:
    """A reference value from the operator: this digest is a good *component* for *hwmodel*."""

    hwmodel: str
    component: str
    """``"image"`` or ``"config"``."""
    digest: bytes
    swversion: str | None
    security_version: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class History:
    """What the device's last accepted evidence said (all None for a first attestation)."""

    bootcount: int | None
    bootseed: bytes | None
    tpm_reset_count: int | None
    tpm_clock: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class AttestationResult:
    """The judgement: an EAR status, the first failure's code, reasons and the AR4SI vector."""

    status: str
    code: str
    reasons: tuple[str, ...]
    trustworthiness: Mapping[str, int]
    claims: Claims | None
    certified_key: bytes | None
    """The SEC1 point a fleet certificate may be issued for (the Alias key for DICE, else the
    DeviceID key); None whenever the status is contraindicated."""
    tpm_clock: tuple[int, int] | None
    """``(reset_count, clock)`` of a verified TPM quote."""
    policy_id: str = field(default="")
    authenticated: bool = False
    """The token's signature verified under a chain to the registered DeviceID key: only then
    did the device itself say this, and only then may a refusal change its standing."""

    def ear(self, now: datetime) -> dict[str, object]:
        """The result as an EAR claims-set (JSON serialisation), issued at *now*."""
        vector = {claim: tier for claim, tier in self.trustworthiness.items() if tier}
        appraisal: dict[str, object] = {
            "ear.status": self.status,
            "ear.trustworthiness-vector": vector,
        }
        if self.policy_id:
            appraisal["ear.appraisal-policy-id"] = self.policy_id
        return {
            "eat_profile": EAR_PROFILE,
            "iat": int(require_aware(now, name="now").timestamp()),
            "ear.verifier-id": dict(VERIFIER_ID),
            "submods": {SUBMODULE: appraisal},
        }


class _Refused(Exception):
    """One check failed: carried to :func:`appraise`, never out of this module."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(slots=True)
class _Warnings:
    reasons: list[str] = field(default_factory=list)
    tiers: dict[str, int] = field(default_factory=dict)
    authenticated: bool = False

    def add(self, claim: str, reason: str) -> None:
        self.reasons.append(reason)
        self.tiers[claim] = TIER_WARNING


def appraise(
    *,
    token: bytes,
    quote: bytes | None,
    quote_signature: bytes | None,
    challenge: Challenge | None,
    device: ProvenDevice | None,
    manufacturer_cas: Sequence[x509.Certificate],
    endorsements: Sequence[Endorsement],
    policy: Policy,
    history: History,
    now: datetime,
) -> AttestationResult:
    """Judge *token* (and, for a TPM, *quote* and its signature); never raises for bad input."""
    now = require_aware(now, name="now")
    warnings = _Warnings()
    claims: Claims | None = None
    certified_key: bytes | None = None
    tpm_clock: tuple[int, int] | None = None
    try:
        try:
            decoded = evidence.decode(token)
        except EvidenceError as exc:
            raise _Refused(exc.code, exc.reason) from None
        claims = decoded.claims
        certified_key, tpm_clock = _judge(
            decoded,
            quote=quote,
            quote_signature=quote_signature,
            challenge=challenge,
            device=device,
            manufacturer_cas=manufacturer_cas,
            endorsements=endorsements,
            policy=policy,
            history=history,
            now=now,
            warnings=warnings,
        )
    except _Refused as exc:
        # The failing claim at tier 96; the others unjudged, since appraisal stopped there.
        tiers = dict.fromkeys(TRUSTWORTHINESS_CLAIMS, TIER_NONE)
        tiers[_CLAIM_OF[exc.code]] = TIER_CONTRAINDICATED
        status, code, reasons = CONTRAINDICATED, exc.code, (*warnings.reasons, exc.reason)
        certified_key = tpm_clock = None
    else:
        tiers = dict.fromkeys(TRUSTWORTHINESS_CLAIMS, TIER_AFFIRMING)
        tiers.update(warnings.tiers)
        status, code, reasons = (
            WARNING if warnings.reasons else AFFIRMING,
            "ok",
            tuple(warnings.reasons),
        )
    return AttestationResult(
        status=status,
        code=code,
        reasons=reasons,
        trustworthiness=tiers,
        claims=claims,
        certified_key=certified_key,
        tpm_clock=tpm_clock,
        policy_id=policy.policy_id,
        authenticated=warnings.authenticated,
    )


def _judge(
    decoded: Evidence,
    *,
    quote: bytes | None,
    quote_signature: bytes | None,
    challenge: Challenge | None,
    device: ProvenDevice | None,
    manufacturer_cas: Sequence[x509.Certificate],
    endorsements: Sequence[Endorsement],
    policy: Policy,
    history: History,
    now: datetime,
    warnings: _Warnings,
) -> tuple[bytes, tuple[int, int] | None]:
    """Every check after decoding, in the profile's order; returns the key to certify."""
    claims = decoded.claims
    if device is None:
        raise _Refused("not-provisioned", "no device was provisioned with this identity")
    if device.other_ids_with_key:
        raise _Refused(
            "key-shared",
            f"the DeviceID key of {device.device_id} is also registered for "
            + ", ".join(device.other_ids_with_key)
            + ": one key under two ids is a cloned device",
        )
    _check_root(claims, device, policy, warnings)
    leaf = _check_chain(decoded, device, manufacturer_cas, now)
    certified_key = _check_signature(decoded, leaf)
    warnings.authenticated = True
    _check_freshness(claims, challenge, policy, now)
    _check_identity_claims(claims, device)
    _check_state(claims, policy, warnings)
    _check_endorsements(claims, device, endorsements, policy, warnings)
    tpm_clock = None
    if claims.rot == "tpm":
        tpm_clock = _check_quote(claims, device, quote, quote_signature)
    _check_history(claims, history, tpm_clock)
    return certified_key, tpm_clock


def _check_root(claims: Claims, device: ProvenDevice, policy: Policy, warnings: _Warnings) -> None:
    if claims.rot != device.rot_kind:
        raise _Refused(
            "kind-mismatch",
            f"the evidence claims a {claims.rot} root of trust; provisioning proved"
            f" {device.rot_kind}",
        )
    if claims.rot not in policy.allowed_roots:
        raise _Refused(
            "rot-not-allowed", f"the policy does not accept a {claims.rot} root of trust"
        )
    if claims.rot == "software":
        warnings.add(HARDWARE, "software root of trust (development only): its keys are a file")


def _check_chain(
    decoded: Evidence,
    device: ProvenDevice,
    manufacturer_cas: Sequence[x509.Certificate],
    now: datetime,
) -> x509.Certificate:
    """The DeviceID certificate (last) from a manufacturer CA, for the registered key and
    this device's id; for DICE, the Alias certificate (first) from the DeviceID key, stating
    the measured firmware. Returns the certificate whose key must have signed the token."""
    chain = decoded.chain
    wanted = 2 if device.rot_kind == "dice" else 1
    if len(chain) != wanted:
        layout = "[Alias, DeviceID]" if wanted == 2 else "[DeviceID]"
        raise _Refused(
            "bad-chain",
            f"x5chain holds {len(chain)} certificates; a {device.rot_kind} device sends {layout}",
        )
    deviceid = chain[-1]
    issuer = next((ca for ca in manufacturer_cas if _issued_by(ca, deviceid)), None)
    if issuer is None:
        raise _Refused(
            "unknown-ca", "the DeviceID certificate is not issued by a trusted manufacturer CA"
        )
    for what, cert in (("manufacturer CA", issuer), *(("x5chain certificate", c) for c in chain)):
        not_before, not_after = _validity(cert)
        if not not_before <= now <= not_after:
            raise _Refused(
                "expired-certificate",
                f"the {what} {cert.subject.rfc4514_string()[:80]} is not valid"
                f" at {now.isoformat()}",
            )
    if _sec1(deviceid) != device.deviceid_key:
        raise _Refused(
            "not-registered-deviceid",
            "the DeviceID certificate certifies another key than the one provisioning registered",
        )
    _check_common_name(deviceid, device.device_id, "DeviceID")
    if wanted == 1:
        return deviceid
    alias = chain[0]
    if not _issued_by(deviceid, alias):
        raise _Refused(
            "alias-not-issued", "the Alias certificate is not issued by the DeviceID certificate"
        )
    _check_common_name(alias, device.device_id, "Alias")
    try:
        svn, fwid = _tcb_info(alias)
    except CryptoError as exc:
        raise _Refused(
            "tcb-mismatch", f"the Alias certificate's DiceTcbInfo: {exc.reason}"
        ) from None
    if fwid != decoded.claims.image_digest:
        raise _Refused(
            "tcb-mismatch", "the DiceTcbInfo FWID is not the image measurement the evidence claims"
        )
    if svn != decoded.claims.security_version:
        raise _Refused(
            "tcb-mismatch",
            f"the DiceTcbInfo svn is {svn}; the evidence claims {decoded.claims.security_version}",
        )
    return alias


@lru_cache(maxsize=CACHE_SIZE)
def _validity(cert: x509.Certificate) -> tuple[datetime, datetime]:
    """The validity period, cached: cryptography builds new datetimes on every access."""
    return cert.not_valid_before_utc, cert.not_valid_after_utc


def _check_common_name(cert: x509.Certificate, device_id: str, what: str) -> None:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(names) != 1 or names[0].value != device_id:
        raise _Refused("name-mismatch", f"the {what} certificate does not name {device_id}")


@lru_cache(maxsize=CACHE_SIZE)
def _issued_by(issuer: x509.Certificate, subject: x509.Certificate) -> bool:
    """*issuer* is a CA certificate whose key signed *subject*, which names it as issuer.

    Cached: both certificates are immutable (parsed from DER), so the answer never changes.
    """
    if subject.issuer != issuer.subject:
        return False
    try:
        constraints = issuer.extensions.get_extension_for_class(x509.BasicConstraints).value
    except (x509.ExtensionNotFound, ValueError):
        return False
    if not constraints.ca:
        return False
    try:
        subject.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


@lru_cache(maxsize=CACHE_SIZE)
def _p256(cert: x509.Certificate) -> tuple[bytes, ec.EllipticCurvePublicKey] | None:
    """The certificate's P-256 key and its SEC1 uncompressed point; None for any other key."""
    try:
        key = cert.public_key()
    except ValueError:
        return None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        return None
    point = key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return point, key


def _sec1(cert: x509.Certificate) -> bytes | None:
    found = _p256(cert)
    return None if found is None else found[0]


_FWID_SHA256 = der.oid(OID_SHA256)
_TCB_SVN = 0x83
_TCB_FWIDS = 0xA6


@lru_cache(maxsize=CACHE_SIZE)
def _tcb_info(alias: x509.Certificate) -> tuple[int, bytes]:
    """``(svn, SHA-256 FWID)`` of the Alias certificate's DiceTcbInfo; CryptoError if absent."""
    try:
        extension = alias.extensions.get_extension_for_oid(x509.ObjectIdentifier(OID_TCB_INFO))
    except x509.ExtensionNotFound:
        raise CryptoError("the extension (2.23.133.5.4.1) is missing") from None
    except ValueError as exc:
        raise CryptoError(f"the extensions do not parse: {exc}") from None
    value = extension.value
    if not isinstance(value, x509.UnrecognizedExtension):
        raise CryptoError("the extension is not DER this reads")
    data = value.value
    start, end = der_parser.expect(data, 0, len(data), der.SEQUENCE, "DiceTcbInfo")
    if end != len(data):
        raise CryptoError("trailing bytes after DiceTcbInfo")
    svn: int | None = None
    fwid: bytes | None = None
    at = start
    while at < end:
        tag, content, stop = der_parser.read(data, at, end)
        if tag == _TCB_SVN:
            if not 0 < stop - content <= 8 or data[content] & 0x80:
                raise CryptoError(f"svn at offset {at} is not a small non-negative INTEGER")
            svn = int.from_bytes(data[content:stop], "big")
        elif tag == _TCB_FWIDS:
            fwid = _sha256_fwid(data, content, stop)
        at = stop
    if svn is None or fwid is None:
        raise CryptoError("svn or the SHA-256 FWID is missing")
    return svn, fwid


def _sha256_fwid(data: bytes, at: int, end: int) -> bytes | None:
    """The SHA-256 digest among the FWIDs ``SEQUENCE { hashAlg OID, digest OCTET STRING }``."""
    while at < end:
        start, stop = der_parser.expect(data, at, end, der.SEQUENCE, "FWID")
        algorithm_end = der_parser.read(data, start, stop)[2]
        if data[start:algorithm_end] == _FWID_SHA256:
            digest_start, digest_end = der_parser.expect(
                data, algorithm_end, stop, der.OCTET_STRING, "FWID digest"
            )
            return data[digest_start:digest_end]
        at = stop
    return None


def _check_signature(decoded: Evidence, leaf: x509.Certificate) -> bytes:
    """Refuse unless *leaf*'s key signed the token; returns that key's SEC1 point."""
    found = _p256(leaf)
    if found is None:
        raise _Refused("bad-signature", "the signing certificate's key is not P-256")
    point, key = found
    signature = decoded.signature
    der_signature = encode_dss_signature(
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    )
    try:
        key.verify(der_signature, decoded.to_be_signed, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise _Refused(
            "bad-signature", "the COSE signature does not verify with the certified key"
        ) from None
    return point


def _check_freshness(
    claims: Claims, challenge: Challenge | None, policy: Policy, now: datetime
) -> None:
    if challenge is None or not hmac.compare_digest(challenge.nonce, claims.nonce):
        raise _Refused(
            "unknown-nonce", "the nonce answers no outstanding challenge (unknown or replayed)"
        )
    age = (now - require_aware(challenge.issued_at, name="issued_at")).total_seconds()
    if age > policy.max_evidence_age_s:
        raise _Refused(
            "stale-evidence",
            f"the challenge is {age:.0f} s old; the policy allows {policy.max_evidence_age_s} s",
        )


def _check_identity_claims(claims: Claims, device: ProvenDevice) -> None:
    if claims.ueid != evidence.ueid_of(device.deviceid_key):
        raise _Refused("ueid-mismatch", "ueid is not 0x01 || SHA-256 of the DeviceID key")
    if claims.hwmodel != hashlib.sha256(device.hwmodel.encode("utf-8")).digest():
        raise _Refused(
            "hwmodel-mismatch", f"hwmodel is not the SHA-256 of {device.hwmodel!r}, as provisioned"
        )
    if claims.profile != PROFILE:
        raise _Refused("bad-profile", f"eat_profile is {claims.profile!r:.80}, not {PROFILE}")


def _check_state(claims: Claims, policy: Policy, warnings: _Warnings) -> None:
    if claims.dbgstat == 0:
        if not policy.allow_debug:
            raise _Refused(
                "debug-enabled", "debug is enabled (dbgstat 0) and the policy refuses it"
            )
        warnings.add(CONFIGURATION, "debug is enabled (dbgstat 0); the policy allows it")
    if claims.security_version < policy.min_security_version:
        raise _Refused(
            "svn-too-low",
            f"security version {claims.security_version} is below the policy's minimum"
            f" {policy.min_security_version}",
        )


def _check_endorsements(
    claims: Claims,
    device: ProvenDevice,
    endorsements: Sequence[Endorsement],
    policy: Policy,
    warnings: _Warnings,
) -> None:
    for component, digest in ((IMAGE, claims.image_digest), (CONFIG, claims.config_digest)):
        matching = [
            e
            for e in endorsements
            if e.hwmodel == device.hwmodel and e.component == component and e.digest == digest
        ]
        if not matching:
            reason = f"the {component} {digest.hex()[:16]}… is not endorsed for {device.hwmodel}"
            if component == IMAGE:
                raise _Refused("unendorsed-image", reason)
            if policy.require_endorsed_config:
                raise _Refused("unendorsed-config", reason)
            warnings.add(CONFIGURATION, reason)
            continue
        if not any(e.swversion in (None, claims.swversion) for e in matching):
            raise _Refused(
                "version-mismatch",
                f"the {component} is endorsed as version "
                + ", ".join(sorted({str(e.swversion) for e in matching}))
                + f", not {claims.swversion!r}",
            )
        if not any(
            e.swversion in (None, claims.swversion)
            and e.security_version in (None, claims.security_version)
            for e in matching
        ):
            raise _Refused(
                "svn-mismatch",
                f"the {component} is endorsed with another security version than"
                f" {claims.security_version}",
            )


def register_value(digest: bytes) -> bytes:
    """A measurement register extended once, from zero, with *digest*: SHA-256(0^32 || digest)."""
    return hashlib.sha256(bytes(32) + digest).digest()


def _check_quote(
    claims: Claims, device: ProvenDevice, quote: bytes | None, quote_signature: bytes | None
) -> tuple[int, int]:
    if quote is None or quote_signature is None:
        raise _Refused("quote-missing", "a TPM device must send a quote beside its evidence")
    if device.quote_key is None:
        raise _Refused("quote-missing", "no quote key was registered for this TPM at provisioning")
    try:
        # Imported here: only TPM evidence needs tpm2-pytss, so a server without it still
        # appraises DICE evidence.
        from attestation_server import tpm_identity
    except ImportError:
        raise _Refused(
            "quote-unverifiable", "this server cannot verify TPM quotes (tpm2-pytss is missing)"
        ) from None
    expected = {
        QUOTED_REGISTERS[0]: register_value(claims.image_digest),
        QUOTED_REGISTERS[1]: register_value(claims.config_digest),
    }
    try:
        info = tpm_identity.verify_quote(
            device.quote_key, quote, quote_signature, claims.nonce, expected
        )
    except tpm_identity.TpmVerificationError as exc:
        raise _Refused("bad-quote", f"the TPM quote is refused: {exc.reason}") from None
    return info.reset_count, info.clock


def _check_history(claims: Claims, history: History, tpm_clock: tuple[int, int] | None) -> None:
    if history.bootcount is not None:
        if claims.bootcount < history.bootcount:
            raise _Refused(
                "boot-regressed",
                f"bootcount {claims.bootcount} is below the {history.bootcount} already seen",
            )
        if (
            claims.bootcount == history.bootcount
            and history.bootseed is not None
            and not hmac.compare_digest(claims.bootseed, history.bootseed)
        ):
            raise _Refused(
                "clone-suspected",
                f"boot {claims.bootcount} was seen with another bootseed: two live instances"
                " of one identity",
            )
    if tpm_clock is None or history.tpm_reset_count is None:
        return
    reset_count, clock = tpm_clock
    if reset_count < history.tpm_reset_count:
        raise _Refused(
            "tpm-reset-regressed",
            f"the TPM's resetCount {reset_count} is below the {history.tpm_reset_count} already"
            " seen",
        )
    if (
        reset_count == history.tpm_reset_count
        and history.tpm_clock is not None
        and clock < history.tpm_clock
    ):
        raise _Refused(
            "tpm-clock-regressed",
            f"the TPM's clock went back within resetCount {reset_count}",
        )
