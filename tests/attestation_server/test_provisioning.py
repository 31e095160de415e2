"""The registration's own checks, on both engines: what a station cannot talk the server into."""

from __future__ import annotations

import dataclasses
import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import func, select
from tpm2_pytss.constants import TPMA_OBJECT  # type: ignore[import-untyped]

from attestation_server.provisioning import (
    ProvenRecord,
    ProvisioningRefused,
    ProvisioningRegistry,
    Registration,
    RegistrationConflict,
)
from attestation_server.registry import DeviceRegistry
from attestation_server.tables import ProvisionedDevice
from fleet_platform.pki import CertificateAuthority, dice_device_id_constraints
from fleet_platform.storage import Database
from tests.attestation_server.tpm_areas import QUOTE_KEY, RESIDENT, software_public

NOW = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)
TPM_QUOTE_KEY = software_public(int(QUOTE_KEY))
"""What a TPM board's quote key claims; the server checks the claim, the station the TPM."""


@pytest.fixture
def authorities(tmp_path: Path) -> tuple[CertificateAuthority, CertificateAuthority]:
    return (
        CertificateAuthority.create(common_name="Fleet", directory=tmp_path / "fleet"),
        CertificateAuthority.create(
            common_name="Maker", directory=tmp_path / "maker", issues_issuers=True
        ),
    )


def _registry(
    database: Database, fleet: CertificateAuthority, *trusted: CertificateAuthority
) -> ProvisioningRegistry:
    return ProvisioningRegistry(
        database=database,
        authority=fleet,
        manufacturer_cas=lambda: [maker.certificate for maker in trusted],
    )


def _request(
    maker: CertificateAuthority, name: str, key: ec.EllipticCurvePrivateKey, **changes: object
) -> Registration:
    device_id = name
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, device_id)]))
        .sign(key, hashes.SHA256())
    )
    csr_pem = csr.public_bytes(serialization.Encoding.PEM)
    sign = maker.sign_dice_device_id_csr if changes.get("rot_kind") == "dice" else maker.sign_csr
    fields: dict[str, object] = {
        "device_id": device_id,
        "hwmodel": "board-a",
        "rot_kind": "software",
        "csr_der": csr.public_bytes(serialization.Encoding.DER),
        "manufacturer_certificate": sign(csr_pem, required_common_name=device_id).decode(),
        "station": "line-1",
        "quote_key": TPM_QUOTE_KEY if changes.get("rot_kind") == "tpm" else None,
    }
    fields.update(changes)
    return Registration(**fields)  # type: ignore[arg-type]


def _count(database: Database) -> int:
    with database.transaction("count") as tx:
        return int(tx.execute(select(func.count()).select_from(ProvisionedDevice)).scalar_one())


def test_registration_is_idempotent_and_another_key_conflicts(
    database: Database, authorities: tuple[CertificateAuthority, CertificateAuthority]
) -> None:
    fleet, maker = authorities
    registry = _registry(database, fleet, maker)
    key = ec.generate_private_key(ec.SECP256R1())
    first = registry.register(_request(maker, "board-a-1", key), now=NOW)
    again = registry.register(_request(maker, "board-a-1", key), now=NOW)
    assert first.created and not again.created
    assert again.fleet_certificate == first.fleet_certificate
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(RegistrationConflict):
        registry.register(_request(maker, "board-a-1", other), now=NOW)
    replaced = registry.register(_request(maker, "board-a-1", other, reprovision=True), now=NOW)
    assert replaced.created and replaced.public_key != first.public_key
    assert _count(database) == 1


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"device_id": "Board_A"}, "bad-device-id"),
        ({"device_id": "sevenfold-server"}, "bad-device-id"),
        ({"hwmodel": "[red]x y"}, "bad-hwmodel"),
        ({"rot_kind": "hsm"}, "bad-rot-kind"),
        ({"csr_der": b"garbage"}, "bad-csr"),
        ({"manufacturer_certificate": "not pem"}, "bad-certificate"),
    ],
)
def test_bad_values_are_refused_and_nothing_is_recorded(
    database: Database,
    authorities: tuple[CertificateAuthority, CertificateAuthority],
    changes: dict[str, object],
    code: str,
) -> None:
    fleet, maker = authorities
    registry = _registry(database, fleet, maker)
    request = _request(maker, "board-a-2", ec.generate_private_key(ec.SECP256R1()), **changes)
    with pytest.raises(ProvisioningRefused) as refused:
        registry.register(request, now=NOW)
    assert refused.value.code == code
    assert _count(database) == 0


def test_a_csr_for_another_name_or_a_certificate_for_another_key_is_refused(
    database: Database, authorities: tuple[CertificateAuthority, CertificateAuthority]
) -> None:
    fleet, maker = authorities
    registry = _registry(database, fleet, maker)
    key = ec.generate_private_key(ec.SECP256R1())
    wrong_name = _request(maker, "board-a-3", key, device_id="board-a-4")
    with pytest.raises(ProvisioningRefused, match="names") as refused:
        registry.register(wrong_name, now=NOW)
    assert refused.value.code == "cn-mismatch"
    someone_else = _request(maker, "board-a-3", ec.generate_private_key(ec.SECP256R1()))
    mixed = _request(
        maker, "board-a-3", key, manufacturer_certificate=someone_else.manufacturer_certificate
    )
    with pytest.raises(ProvisioningRefused) as refused:
        registry.register(mixed, now=NOW)
    assert refused.value.code == "bad-certificate"
    assert _count(database) == 0


def test_enrollment_claims_never_touch_what_provisioning_proved(
    database: Database, authorities: tuple[CertificateAuthority, CertificateAuthority]
) -> None:
    fleet, maker = authorities
    registry = _registry(database, fleet, maker)
    registry.register(_request(maker, "board-a-5", ec.generate_private_key(ec.SECP256R1())))
    DeviceRegistry(database=database).enroll(
        "board-a-5", hwmodel="claims-other", swname="fw", swversion="1", rot_claimed="tpm",
        boot_count=1, heartbeat_interval=30, now=NOW,
    )  # fmt: skip
    proven = registry.proven(["board-a-5"])["board-a-5"]
    assert (proven.rot_kind, proven.hwmodel) == ("software", "board-a")


def _self_signed(
    name: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name | None = None
) -> str:
    """A certificate for *key* naming *name*, signed by *key* itself (under any issuer name)."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer or subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def test_a_manufacturer_certificate_no_trusted_ca_issued_is_refused(
    database: Database,
    authorities: tuple[CertificateAuthority, CertificateAuthority],
    tmp_path: Path,
) -> None:
    """A stolen factory token is not enough: the certificate must come from a trusted CA."""
    fleet, maker = authorities
    registry = _registry(database, fleet, maker)
    key = ec.generate_private_key(ec.SECP256R1())
    stranger = CertificateAuthority.create(common_name="Maker", directory=tmp_path / "other")
    forgeries = {
        "self-signed": _self_signed("board-a-6", key),
        "under the maker's name": _self_signed("board-a-6", key, maker.certificate.subject),
        "another CA of the same name": _request(
            stranger, "board-a-6", key
        ).manufacturer_certificate,
    }
    for forged in forgeries.values():
        with pytest.raises(ProvisioningRefused) as refused:
            registry.register(
                _request(maker, "board-a-6", key, manufacturer_certificate=forged), now=NOW
            )
        assert refused.value.code == "untrusted-manufacturer"
    assert _count(database) == 0
    assert registry.register(_request(maker, "board-a-6", key), now=NOW).created


def test_a_server_trusting_no_manufacturer_ca_refuses_every_registration(
    database: Database, authorities: tuple[CertificateAuthority, CertificateAuthority]
) -> None:
    fleet, maker = authorities
    with pytest.raises(ProvisioningRefused) as refused:
        _registry(database, fleet).register(
            _request(maker, "board-a-7", ec.generate_private_key(ec.SECP256R1())), now=NOW
        )
    assert refused.value.code == "no-manufacturer-ca"
    assert _count(database) == 0


def test_a_dice_board_needs_the_deviceid_form_and_others_an_end_entity(
    database: Database, authorities: tuple[CertificateAuthority, CertificateAuthority]
) -> None:
    fleet, maker = authorities
    registry = _registry(database, fleet, maker)
    key = ec.generate_private_key(ec.SECP256R1())
    dice = _request(maker, "board-a-8", key, rot_kind="dice")
    software = _request(maker, "board-a-8", key)
    for wrong in (
        _request(
            maker, "board-a-8", key, rot_kind="dice",
            manufacturer_certificate=software.manufacturer_certificate,
        ),
        _request(
            maker, "board-a-8", key, rot_kind="tpm",
            manufacturer_certificate=dice.manufacturer_certificate,
        ),
        _request(maker, "board-a-8", key, manufacturer_certificate=dice.manufacturer_certificate),
    ):  # fmt: skip
        with pytest.raises(ProvisioningRefused) as refused:
            registry.register(wrong, now=NOW)
        assert refused.value.code == "bad-certificate", wrong.rot_kind
    assert _count(database) == 0
    assert registry.register(dice, now=NOW).rot_kind == "dice"


def test_a_dice_deviceid_from_a_ca_that_cannot_issue_issuers_is_refused(
    database: Database,
    authorities: tuple[CertificateAuthority, CertificateAuthority],
    tmp_path: Path,
) -> None:
    """The certificate a path-length-0 CA could only make by hand (pki refuses to)."""
    fleet, _ = authorities
    flat = CertificateAuthority.create(common_name="Flat maker", directory=tmp_path / "flat")
    flat_key = serialization.load_pem_private_key(
        (tmp_path / "flat" / "ca.key").read_bytes(), password=None
    )
    assert isinstance(flat_key, ec.EllipticCurvePrivateKey)
    flat_cert = x509.load_pem_x509_certificate(flat.cert_path.read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    deviceid = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "board-a-9")]))
        .issuer_name(flat_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, False, False, False),
            critical=True,
        )
        .add_extension(dice_device_id_constraints("board-a-9"), critical=True)
        .sign(flat_key, hashes.SHA256())
    )
    request = _request(fleet, "board-a-9", key)
    request = dataclasses.replace(
        request,
        rot_kind="dice",
        manufacturer_certificate=deviceid.public_bytes(serialization.Encoding.PEM).decode(),
    )
    with pytest.raises(ProvisioningRefused) as refused:
        _registry(database, fleet, flat).register(request, now=NOW)
    assert refused.value.code == "bad-certificate"


@pytest.mark.parametrize(
    ("before", "after"), [("tpm", "software"), ("dice", "software"), ("tpm", "dice")]
)
def test_a_reprovision_never_lowers_the_root_of_trust(
    database: Database,
    authorities: tuple[CertificateAuthority, CertificateAuthority],
    before: str,
    after: str,
) -> None:
    fleet, maker = authorities
    registry = _registry(database, fleet, maker)
    key = ec.generate_private_key(ec.SECP256R1())
    registry.register(_request(maker, "board-a-10", key, rot_kind=before), now=NOW)
    for new_key in (key, ec.generate_private_key(ec.SECP256R1())):
        with pytest.raises(RegistrationConflict) as refused:
            registry.register(
                _request(maker, "board-a-10", new_key, rot_kind=after, reprovision=True), now=NOW
            )
        assert refused.value.code == "downgrade"
    kept = registry.get("board-a-10")
    assert kept is not None and kept.rot_kind == before


def test_a_reprovision_may_raise_the_kind_and_its_event_names_the_replaced_key(
    database: Database, authorities: tuple[CertificateAuthority, CertificateAuthority]
) -> None:
    fleet, maker = authorities
    registry = _registry(database, fleet, maker)
    old, new = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    registry.register(_request(maker, "board-a-11", old), now=NOW)
    replaced = registry.register(
        _request(maker, "board-a-11", new, rot_kind="tpm", reprovision=True), now=NOW
    )
    assert replaced.rot_kind == "tpm"

    def fingerprint(key: ec.EllipticCurvePrivateKey) -> str:
        der = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return hashlib.sha256(der).hexdigest()

    [event] = [e for e in DeviceRegistry(database=database).events() if e.kind == "reprovisioned"]
    assert event.device_id == "board-a-11" and event.reason is not None
    assert f"replaces DeviceID key {fingerprint(old)} (software)" in event.reason
    assert fingerprint(new) in event.reason


def test_a_tpm_board_is_recorded_with_its_quote_key_and_another_one_is_a_change(
    database: Database, authorities: tuple[CertificateAuthority, CertificateAuthority]
) -> None:
    fleet, maker = authorities
    registry = _registry(database, fleet, maker)
    key = ec.generate_private_key(ec.SECP256R1())
    first = registry.register(_request(maker, "board-a-12", key, rot_kind="tpm"), now=NOW)
    assert first.created and first.quote_key == TPM_QUOTE_KEY.hex()
    stored = registry.get("board-a-12")
    assert stored is not None and stored.quote_key == TPM_QUOTE_KEY.hex()
    assert not registry.register(_request(maker, "board-a-12", key, rot_kind="tpm")).created
    other = software_public(int(QUOTE_KEY))
    with pytest.raises(RegistrationConflict, match="quote key"):
        registry.register(_request(maker, "board-a-12", key, rot_kind="tpm", quote_key=other))
    replaced = registry.register(
        _request(maker, "board-a-12", key, rot_kind="tpm", quote_key=other, reprovision=True)
    )
    assert replaced.created and replaced.quote_key == other.hex()
    [event] = [e for e in DeviceRegistry(database=database).events() if e.kind == "reprovisioned"]
    assert event.reason is not None and "new quote key" in event.reason
    software = registry.register(_request(maker, "board-a-13", key))
    assert software.quote_key is None


BAD_QUOTE_KEYS: dict[str, tuple[dict[str, object], str]] = {
    "missing for a TPM board": ({"rot_kind": "tpm", "quote_key": None}, "needs its quote key"),
    "given for a software board": ({"quote_key": TPM_QUOTE_KEY}, "software board has no"),
    "given for a DICE board": ({"rot_kind": "dice", "quote_key": TPM_QUOTE_KEY}, "dice board"),
    "oversize": ({"rot_kind": "tpm", "quote_key": TPM_QUOTE_KEY + bytes(200)}, "over 256"),
    "garbage": ({"rot_kind": "tpm", "quote_key": b"\x00\x04garbage"}, "public area"),
    "a DeviceID key's": (
        {"rot_kind": "tpm", "quote_key": software_public(int(RESIDENT))},
        "not restricted",
    ),
    "not resident": (
        {"rot_kind": "tpm", "quote_key": software_public(int(QUOTE_KEY & ~TPMA_OBJECT.FIXEDTPM))},
        "fixedTPM",
    ),
}


@pytest.mark.parametrize("case", list(BAD_QUOTE_KEYS))
def test_a_quote_key_that_is_missing_misplaced_or_no_quote_key_is_refused(
    database: Database, authorities: tuple[CertificateAuthority, CertificateAuthority], case: str
) -> None:
    fleet, maker = authorities
    changes, reason = BAD_QUOTE_KEYS[case]
    request = _request(maker, "board-a-14", ec.generate_private_key(ec.SECP256R1()), **changes)
    with pytest.raises(ProvisioningRefused, match=reason) as refused:
        _registry(database, fleet, maker).register(request, now=NOW)
    assert refused.value.code == "bad-quote-key"
    assert _count(database) == 0


def test_stations_registering_one_device_at_once_end_with_one_record(
    database: Database, authorities: tuple[CertificateAuthority, CertificateAuthority]
) -> None:
    """Eight stations at once, four with the device's key and four with another: one row, one
    key; every same-key station gets that registration, every other one a conflict."""
    fleet, maker = authorities
    registry = _registry(database, fleet, maker)
    mine, theirs = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    requests = [_request(maker, "board-a-race", k) for k in (mine, theirs) * 4]
    start = threading.Barrier(len(requests))

    def attempt(request: Registration) -> ProvenRecord | str:
        start.wait()
        try:
            return registry.register(request, now=NOW)
        except RegistrationConflict:
            return "conflict"

    with ThreadPoolExecutor(len(requests)) as pool:
        outcomes = list(pool.map(attempt, requests))
    records = [o for o in outcomes if isinstance(o, ProvenRecord)]
    assert _count(database) == 1
    assert sum(record.created for record in records) == 1
    assert len({record.public_key for record in records}) == 1
    assert len(records) == 4 and outcomes.count("conflict") == 4
