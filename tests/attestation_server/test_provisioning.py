"""The registration's own checks, on both engines: what a station cannot talk the server into."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import func, select

from attestation_server.provisioning import (
    ProvisioningRefused,
    ProvisioningRegistry,
    Registration,
    RegistrationConflict,
)
from attestation_server.registry import DeviceRegistry
from attestation_server.tables import ProvisionedDevice
from fleet_platform.pki import CertificateAuthority
from fleet_platform.storage import Database

NOW = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)


@pytest.fixture
def authorities(tmp_path: Path) -> tuple[CertificateAuthority, CertificateAuthority]:
    return (
        CertificateAuthority.create(common_name="Fleet", directory=tmp_path / "fleet"),
        CertificateAuthority.create(common_name="Maker", directory=tmp_path / "maker"),
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
    fields: dict[str, object] = {
        "device_id": device_id,
        "hwmodel": "board-a",
        "rot_kind": "software",
        "csr_der": csr.public_bytes(serialization.Encoding.DER),
        "manufacturer_certificate": maker.sign_csr(
            csr.public_bytes(serialization.Encoding.PEM), required_common_name=device_id
        ).decode(),
        "station": "line-1",
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
    registry = ProvisioningRegistry(database=database, authority=fleet)
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
    registry = ProvisioningRegistry(database=database, authority=fleet)
    request = _request(maker, "board-a-2", ec.generate_private_key(ec.SECP256R1()), **changes)
    with pytest.raises(ProvisioningRefused) as refused:
        registry.register(request, now=NOW)
    assert refused.value.code == code
    assert _count(database) == 0


def test_a_csr_for_another_name_or_a_certificate_for_another_key_is_refused(
    database: Database, authorities: tuple[CertificateAuthority, CertificateAuthority]
) -> None:
    fleet, maker = authorities
    registry = ProvisioningRegistry(database=database, authority=fleet)
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
    registry = ProvisioningRegistry(database=database, authority=fleet)
    registry.register(_request(maker, "board-a-5", ec.generate_private_key(ec.SECP256R1())))
    DeviceRegistry(database=database).enroll(
        "board-a-5", hwmodel="claims-other", swname="fw", swversion="1", rot_claimed="tpm",
        boot_count=1, heartbeat_interval=30, now=NOW,
    )  # fmt: skip
    proven = registry.proven(["board-a-5"])["board-a-5"]
    assert (proven.rot_kind, proven.hwmodel) == ("software", "board-a")
