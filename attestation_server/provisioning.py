"""Factory provisioning, server side: record what a station proved, sign the fleet certificate.

A factory station (``sevenfold factory provision``) talks to a board's console,
checks its CSR (and for a TPM its endorsement), signs a DeviceID certificate
with the manufacturer CA and registers the device here with the ``factory``
token. The server checks again everything it can check itself (the CSR's
proof of possession, its CN, the curve, the device id and hardware model
syntax, the root-of-trust kind, that the manufacturer certificate is for the
same key and name, that a manufacturer CA this server trusts issued it, and in
the form the kind calls for, and that a TPM board's quote key is a restricted
TPM-resident signing key), signs a fleet certificate for the same key and
records the device in one transaction: a registration is there completely or
not at all. A stolen factory token alone therefore registers nothing: the
registration also needs a certificate from a trusted manufacturer CA.

Registering is idempotent: the same device id with the same key returns the
stored registration, so a station that lost power between registering and
installing can finish. A different key for a registered id is a conflict (a
cloned serial number, or a board whose root of trust was reset) unless the
station says ``reprovision``. A reprovision never lowers the root-of-trust
kind (tpm > dice > software): a board proven to hold a TPM cannot be replaced
by a claim of a weaker one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field
from sqlalchemy import Table, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from attestation_server import tpm_identity
from attestation_server.tables import DeviceEvent, ProvisionedDevice
from device_runtime.core import protocol
from device_runtime.core.errors import CryptoError, InvalidField, SevenfoldError
from fleet_platform.manufacturer_cas import is_ca_certificate
from fleet_platform.pki import CertificateAuthority, dice_device_id_constraints
from fleet_platform.storage import Database

_PROVISIONED = cast(Table, ProvisionedDevice.__table__)
_EVENTS = cast(Table, DeviceEvent.__table__)
HWMODEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
"""A hardware model: part of the device id and one word of the console's hello."""
STATION = re.compile(r"^[ -~]{1,64}$")
MAX_CSR = 4096
MAX_CERTIFICATE = 8192
MAX_QUOTE_KEY = 256
"""Bytes of a quote key's TPM2B_PUBLIC: an ECC P-256 key's is about 90, a policy adds 32-64."""
STRENGTH = {"software": 0, "dice": 1, "tpm": 2}
"""Root-of-trust kinds, weakest first: a reprovision may keep or raise the kind, never lower it."""


class ProvisioningRefused(SevenfoldError):
    """A registration the server will not record; ``code`` says which check failed."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code


class RegistrationConflict(ProvisioningRefused):
    """The device id is registered with another key (or other proven facts)."""

    def __init__(self, reason: str, *, code: str = "conflict") -> None:
        super().__init__(code, reason)


def key_fingerprint(point_hex: str) -> str:
    """SHA-256 (hex) of the SubjectPublicKeyInfo of a stored DeviceID key (a P-256 point in hex),
    as ``openssl pkey -pubin -outform DER | sha256sum`` shows it."""
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), bytes.fromhex(point_hex))
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def public_point(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def read_csr(der: bytes, device_id: str) -> x509.CertificateSigningRequest:
    """The CSR, if it proves possession of a P-256 key and names exactly *device_id*.

    Shared by the station and the server, so both refuse the same requests
    with the same codes.
    """
    try:
        csr = x509.load_der_x509_csr(der)
        public = csr.public_key()
        valid = csr.is_signature_valid
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise ProvisioningRefused(
            "bad-csr", f"not a DER certificate signing request: {exc}"
        ) from None
    if not isinstance(public, ec.EllipticCurvePublicKey) or not isinstance(
        public.curve, ec.SECP256R1
    ):
        raise ProvisioningRefused("bad-csr", "the CSR key is not an ECDSA P-256 key")
    if not valid:
        raise ProvisioningRefused(
            "proof-of-possession", "the CSR's signature is not made by its key"
        )
    names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(names) != 1 or names[0].value != device_id:
        shown = [str(name.value)[:64] for name in names]
        raise ProvisioningRefused("cn-mismatch", f"the CSR names {shown}, not {device_id!r}")
    return csr


def check_device_id(device_id: str) -> str:
    try:
        return protocol.check_device_id(device_id)
    except InvalidField as exc:
        raise ProvisioningRefused("bad-device-id", exc.reason) from None


def check_hwmodel(hwmodel: str) -> str:
    if not HWMODEL.fullmatch(hwmodel):
        raise ProvisioningRefused(
            "bad-hwmodel", "a hardware model is 1-64 letters, digits, '.', '_' or '-'"
        )
    return hwmodel


def check_kind(kind: str) -> str:
    if kind not in protocol.ROOTS_OF_TRUST:
        raise ProvisioningRefused(
            "bad-rot-kind",
            f"root-of-trust kind must be one of {', '.join(protocol.ROOTS_OF_TRUST)}",
        )
    return kind


@dataclass(frozen=True, slots=True, kw_only=True)
class Registration:
    """What a station asks the server to record."""

    device_id: str
    hwmodel: str
    rot_kind: str
    csr_der: bytes
    manufacturer_certificate: str
    station: str
    reprovision: bool = False
    quote_key: bytes | None = None
    """A TPM board's restricted quote key (marshalled TPM2B_PUBLIC), which the station proved
    lives in the board's TPM; None for every other kind."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ProvenRecord:
    """A provisioned device as stored; ``created`` is False for a repeated registration."""

    device_id: str
    hwmodel: str
    rot_kind: str
    public_key: str
    manufacturer_certificate: str
    fleet_certificate: str
    station: str
    provisioned_at: datetime
    quote_key: str | None = None
    """The TPM quote key's TPM2B_PUBLIC in hex (``tpm_identity.verify_quote`` takes its bytes)."""
    created: bool = False

    @classmethod
    def from_row(cls, row: Any, *, created: bool = False) -> ProvenRecord:
        return cls(
            device_id=row["device_id"],
            hwmodel=row["hwmodel"],
            rot_kind=row["rot_kind"],
            public_key=row["public_key"],
            manufacturer_certificate=row["manufacturer_certificate"],
            fleet_certificate=row["fleet_certificate"],
            station=row["station"],
            provisioned_at=row["provisioned_at"],
            quote_key=row["quote_key"],
            created=created,
        )


class ProvisioningRegistry:
    """The provisioned_devices table: what factories proved, one row per device."""

    def __init__(
        self,
        *,
        database: Database,
        authority: CertificateAuthority,
        manufacturer_cas: Callable[[], Sequence[x509.Certificate]],
    ) -> None:
        """*manufacturer_cas* answers the CAs trusted now; it is asked on every registration."""
        self._database = database
        self._authority = authority
        self._manufacturer_cas = manufacturer_cas
        dialect = sqlite if database.dialect == "sqlite" else postgresql
        self._insert = (
            dialect.insert(_PROVISIONED)
            .on_conflict_do_nothing(index_elements=[_PROVISIONED.c.device_id])
            .returning(_PROVISIONED.c.device_id)
        )

    def register(self, request: Registration, *, now: datetime | None = None) -> ProvenRecord:
        """Check *request*, sign its fleet certificate and record it, all or nothing."""
        device_id = check_device_id(request.device_id)
        check_hwmodel(request.hwmodel)
        check_kind(request.rot_kind)
        if not STATION.fullmatch(request.station):
            raise ProvisioningRefused("bad-station", "a station name is 1-64 printable characters")
        quote_key = _recorded_quote_key(request.rot_kind, request.quote_key)
        csr = read_csr(request.csr_der, device_id)
        point = public_point(cast(ec.EllipticCurvePublicKey, csr.public_key()))
        at = now or datetime.now(UTC)
        _check_manufacturer_certificate(
            request.manufacturer_certificate,
            device_id=device_id,
            point=point,
            kind=request.rot_kind,
            trusted=self._manufacturer_cas(),
            at=at,
        )
        values = {
            "device_id": device_id,
            "hwmodel": request.hwmodel,
            "rot_kind": request.rot_kind,
            "public_key": point.hex(),
            "manufacturer_certificate": request.manufacturer_certificate,
            "station": request.station,
            "provisioned_at": at,
            "quote_key": quote_key,
        }
        # Signed before the transaction (it is only CPU), so the write lock is held briefly;
        # a repeated registration discards it and returns the stored one.
        pem = csr.public_bytes(serialization.Encoding.PEM)
        values["fleet_certificate"] = self._authority.sign_csr(
            pem, required_common_name=device_id
        ).decode()
        with self._database.transaction("register a provisioned device") as tx:
            # The insert comes first, so the transaction holds the write lock before it
            # reads: two stations racing for one id serialise instead of deadlocking.
            created = tx.execute(self._insert, values).first() is not None
            known: Any = None
            if not created:
                query = select(_PROVISIONED).where(_PROVISIONED.c.device_id == device_id)
                if self._database.dialect == "postgresql":
                    query = query.with_for_update()
                known = tx.execute(query).mappings().one()
                if _same(known, values):
                    return ProvenRecord.from_row(known)
                if not request.reprovision:
                    raise RegistrationConflict(
                        f"{device_id} is registered with another DeviceID key, quote key,"
                        " hardware model or root of trust; reprovision to replace it"
                    )
                if STRENGTH[request.rot_kind] < STRENGTH[known["rot_kind"]]:
                    raise RegistrationConflict(
                        f"{device_id} was proven to have a {known['rot_kind']} root of trust;"
                        f" a reprovision cannot lower it to {request.rot_kind}",
                        code="downgrade",
                    )
                tx.execute(
                    update(_PROVISIONED)
                    .where(_PROVISIONED.c.device_id == device_id)
                    .values(**values)
                )
            tx.execute(
                insert(_EVENTS).values(
                    device_id=device_id,
                    at=at,
                    kind="provisioned" if created else "reprovisioned",
                    code=None,
                    reason=_event_reason(request, known, values),
                )
            )
            return ProvenRecord.from_row(values, created=True)

    def get(self, device_id: str) -> ProvenRecord | None:
        with self._database.transaction("read a provisioned device") as tx:
            row = (
                tx.execute(select(_PROVISIONED).where(_PROVISIONED.c.device_id == device_id))
                .mappings()
                .one_or_none()
            )
        return None if row is None else ProvenRecord.from_row(row)

    def proven(self, device_ids: Iterable[str]) -> dict[str, ProvenRecord]:
        """The provisioned ones among *device_ids*, by id."""
        wanted = sorted(set(device_ids))
        if not wanted:
            return {}
        with self._database.transaction("read provisioned devices") as tx:
            rows = tx.execute(
                select(_PROVISIONED).where(_PROVISIONED.c.device_id.in_(wanted))
            ).mappings()
            return {row["device_id"]: ProvenRecord.from_row(row) for row in rows}


def _event_reason(request: Registration, known: Any, values: dict[str, Any]) -> str:
    reason = (
        f"{request.rot_kind} root of trust (proven), {request.hwmodel},"
        f" by station {request.station}"
    )
    if known is None:
        return reason
    if known["quote_key"] != values["quote_key"] and values["quote_key"] is not None:
        reason += "; new quote key"
    old, new = str(known["public_key"]), str(values["public_key"])
    if old == new:
        return f"{reason}; same DeviceID key {key_fingerprint(old)}, was {known['rot_kind']}"
    return (
        f"{reason}; replaces DeviceID key {key_fingerprint(old)} ({known['rot_kind']})"
        f" with {key_fingerprint(new)}"
    )


def _same(known: Any, values: dict[str, Any]) -> bool:
    """The stored registration is this one: same DeviceID key (compared in constant time),
    quote key, model and kind."""
    return (
        hmac.compare_digest(str(known["public_key"]), str(values["public_key"]))
        and known["quote_key"] == values["quote_key"]
        and known["hwmodel"] == values["hwmodel"]
        and known["rot_kind"] == values["rot_kind"]
    )


def _recorded_quote_key(kind: str, quote_key: bytes | None) -> str | None:
    """The quote key as recorded (hex), if it is a TPM-resident restricted P-256 signing key.

    A TPM board must bring one (a verifier believes its quotes only with the key provisioning
    recorded); any other kind has none. The station proved that the key lives in the board's
    certified TPM (a credential challenge); the server, which never speaks to the board,
    checks what the key's public area says of it.
    """
    if kind != "tpm":
        if quote_key is not None:
            raise ProvisioningRefused("bad-quote-key", f"a {kind} board has no TPM quote key")
        return None
    if quote_key is None:
        raise ProvisioningRefused("bad-quote-key", "a TPM board's registration needs its quote key")
    if len(quote_key) > MAX_QUOTE_KEY:
        raise ProvisioningRefused(
            "bad-quote-key", f"the quote key is {len(quote_key)} bytes, over {MAX_QUOTE_KEY}"
        )
    try:
        tpm_identity.check_quote_key(quote_key)
    except tpm_identity.TpmIdentityError as exc:
        raise ProvisioningRefused("bad-quote-key", exc.reason) from None
    return quote_key.hex()


def _check_manufacturer_certificate(
    pem: str,
    *,
    device_id: str,
    point: bytes,
    kind: str,
    trusted: Sequence[x509.Certificate],
    at: datetime,
) -> None:
    """For the CSR's key and name, issued by a trusted manufacturer CA, in the kind's form."""
    if not trusted:
        raise ProvisioningRefused(
            "no-manufacturer-ca",
            "this server trusts no manufacturer CA, so it can record no provisioned device;"
            " start it with --manufacturer-ca",
        )
    try:
        certificate = x509.load_pem_x509_certificate(pem.encode())
        public = certificate.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise ProvisioningRefused("bad-certificate", f"manufacturer certificate: {exc}") from None
    if not isinstance(public, ec.EllipticCurvePublicKey) or not hmac.compare_digest(
        public_point(public), point
    ):
        raise ProvisioningRefused(
            "bad-certificate", "the manufacturer certificate is not for the CSR's key"
        )
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(names) != 1 or names[0].value != device_id:
        raise ProvisioningRefused(
            "bad-certificate", f"the manufacturer certificate does not name {device_id!r}"
        )
    issuer = _trusted_issuer(certificate, trusted)
    if issuer is None:
        raise ProvisioningRefused(
            "untrusted-manufacturer",
            "the manufacturer certificate is not issued by a manufacturer CA this server trusts",
        )
    if not issuer.not_valid_before_utc <= at <= issuer.not_valid_after_utc or not (
        certificate.not_valid_before_utc <= at <= certificate.not_valid_after_utc
    ):
        raise ProvisioningRefused(
            "bad-certificate", "the manufacturer certificate or its CA is not valid now"
        )
    _check_form(certificate, issuer, device_id=device_id, kind=kind)


def _trusted_issuer(
    certificate: x509.Certificate, trusted: Sequence[x509.Certificate]
) -> x509.Certificate | None:
    """The trusted CA whose key signed *certificate* (its name is the certificate's issuer)."""
    for candidate in trusted:
        if not is_ca_certificate(candidate):
            continue
        try:
            certificate.verify_directly_issued_by(candidate)
        except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
            continue
        return candidate
    return None


def _check_form(
    certificate: x509.Certificate, issuer: x509.Certificate, *, device_id: str, kind: str
) -> None:
    """A DICE DeviceID certificate is an issuer confined to the device's own name (as
    ``CertificateAuthority.sign_dice_device_id_csr`` makes it); any other is an end entity."""
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except (x509.ExtensionNotFound, ValueError) as exc:
        raise ProvisioningRefused(
            "bad-certificate", f"the manufacturer certificate lacks an extension: {exc}"
        ) from None
    if kind != "dice":
        if constraints.ca or usage.key_cert_sign:
            raise ProvisioningRefused(
                "bad-certificate",
                f"a {kind} board's manufacturer certificate must be an end-entity certificate",
            )
        return
    try:
        names = certificate.extensions.get_extension_for_class(x509.NameConstraints).value
    except x509.ExtensionNotFound:
        names = None
    issuer_depth = issuer.extensions.get_extension_for_class(x509.BasicConstraints).value
    if (
        not constraints.ca
        or constraints.path_length != 0
        or not usage.key_cert_sign
        or names is None
        or names != dice_device_id_constraints(device_id)
        or issuer_depth.path_length == 0
    ):
        raise ProvisioningRefused(
            "bad-certificate",
            "a DICE board's manufacturer certificate must be its DeviceID certificate: CA of"
            " path length 0 with keyCertSign, confined to the device's own name, from a"
            " manufacturer CA that may issue issuers",
        )


@dataclass(frozen=True, slots=True)
class BrokerInfo:
    """Where provisioned devices connect, and the CA their broker's certificate chains to."""

    host: str
    port: int
    ca_pem: str
    recovery_port: int | None = None
    """The recovery listener, where a device with only its DeviceID certificate attests."""


class RegistrationRequest(BaseModel):
    device_id: str = Field(max_length=protocol.MAX_DEVICE_ID)
    hwmodel: str = Field(max_length=64)
    rot_kind: str = Field(max_length=16)
    csr: str = Field(max_length=MAX_CSR, description="the DeviceID CSR, DER in base64")
    manufacturer_certificate: str = Field(max_length=MAX_CERTIFICATE, description="PEM")
    station: str = Field(max_length=64)
    reprovision: bool = False
    quote_key: str | None = Field(
        default=None,
        max_length=(MAX_QUOTE_KEY + 2) // 3 * 4,
        description="a TPM board's quote key: TPM2B_PUBLIC in base64 (TPM boards only)",
    )


class RegistrationView(BaseModel):
    device_id: str
    hwmodel: str
    rot_kind: str
    public_key: str
    station: str
    provisioned_at: datetime
    created: bool
    """False when this repeats a registration already recorded."""
    fleet_certificate: str
    broker_ca: str
    broker_host: str
    broker_port: int
    broker_recovery_port: int | None = None
    """Where the device attests with its DeviceID certificate to earn a fleet certificate."""


def router(
    *,
    registry: ProvisioningRegistry,
    authorized: Callable[..., None],
    broker: Callable[[], BrokerInfo],
) -> APIRouter:
    """The factory's route; *authorized* is the factory-token dependency."""
    api = APIRouter(prefix="/api/v1", tags=["factory"], dependencies=[Depends(authorized)])

    @api.post("/provisioned-devices")
    def register(body: RegistrationRequest) -> RegistrationView:
        try:
            csr_der = base64.b64decode(body.csr, validate=True)
        except binascii.Error:
            raise HTTPException(status_code=422, detail="bad-csr: not base64") from None
        try:
            quote_key = (
                None if body.quote_key is None else base64.b64decode(body.quote_key, validate=True)
            )
        except binascii.Error:
            raise HTTPException(status_code=422, detail="bad-quote-key: not base64") from None
        try:
            record = registry.register(
                Registration(
                    device_id=body.device_id,
                    hwmodel=body.hwmodel,
                    rot_kind=body.rot_kind,
                    csr_der=csr_der,
                    manufacturer_certificate=body.manufacturer_certificate,
                    station=body.station,
                    reprovision=body.reprovision,
                    quote_key=quote_key,
                )
            )
        except RegistrationConflict as exc:
            raise HTTPException(status_code=409, detail=exc.explain()) from None
        except (ProvisioningRefused, CryptoError) as exc:
            raise HTTPException(status_code=422, detail=exc.explain()) from None
        link = broker()
        return RegistrationView(
            device_id=record.device_id,
            hwmodel=record.hwmodel,
            rot_kind=record.rot_kind,
            public_key=record.public_key,
            station=record.station,
            provisioned_at=record.provisioned_at,
            created=record.created,
            fleet_certificate=record.fleet_certificate,
            broker_ca=link.ca_pem,
            broker_host=link.host,
            broker_port=link.port,
            broker_recovery_port=link.recovery_port,
        )

    return api
