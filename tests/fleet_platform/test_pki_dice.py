"""A DICE DeviceID certificate may issue its device's Alias certificate and nothing else.

``CertificateAuthority.sign_dice_device_id_csr`` makes the one kind of issuer a
manufacturer CA hands a device: every leaf it could sign is checked here with
the real ``openssl verify``: a directory name outside its own, or any DNS name,
mail address, URI or IP address, fails.
"""

from __future__ import annotations

import datetime
import ipaddress
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fleet_platform.pki import CertificateAuthority, InvalidRequest
from tests.components import binary

DEVICE = "dev-1"


def _name(*common_names: str, unit: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, cn) for cn in common_names]
    if unit is not None:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit))
    return x509.Name(attributes)


ALIAS = _name(DEVICE, unit="DICE Alias")


@pytest.fixture(scope="module")
def issuer(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, Path, ec.EllipticCurvePrivateKey]:
    directory = tmp_path_factory.mktemp("dice-pki")
    ca = CertificateAuthority.create(
        common_name="Maker CA", directory=directory / "ca", issues_issuers=True
    )
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(_name(DEVICE))
        .sign(key, hashes.SHA256())
    )
    pem = ca.sign_dice_device_id_csr(
        csr.public_bytes(serialization.Encoding.PEM), required_common_name=DEVICE
    )
    (directory / "deviceid.pem").write_bytes(pem)
    return ca.cert_path, directory / "deviceid.pem", key


def _verify(
    issuer: tuple[Path, Path, ec.EllipticCurvePrivateKey],
    subject: x509.Name,
    alt_names: list[x509.GeneralName] | None,
    tmp_path: Path,
) -> subprocess.CompletedProcess[str]:
    ca_path, deviceid_path, key = issuer
    deviceid = x509.load_pem_x509_certificate(deviceid_path.read_bytes())
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(deviceid.subject)
        .public_key(ec.generate_private_key(ec.SECP256R1()).public_key())
        .serial_number(7)
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    if alt_names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(alt_names), critical=len(subject) == 0
        )
    leaf = tmp_path / "leaf.pem"
    leaf.write_bytes(builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
    return subprocess.run(
        [binary("openssl"), "verify", "-CAfile", str(ca_path), "-untrusted", str(deviceid_path),
         str(leaf)],
        capture_output=True, text=True,
    )  # fmt: skip


def test_its_own_alias_name_verifies(
    issuer: tuple[Path, Path, ec.EllipticCurvePrivateKey], tmp_path: Path
) -> None:
    run = _verify(issuer, ALIAS, None, tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.parametrize(
    ("subject", "alt_names"),
    [
        (_name("another-device"), None),
        (_name(), [x509.DNSName("fleet-server")]),
        (ALIAS, [x509.DNSName("victim-device")]),
        (ALIAS, [x509.RFC822Name("ops@example.com")]),
        (ALIAS, [x509.UniformResourceIdentifier("https://fleet.example/")]),
        (ALIAS, [x509.IPAddress(ipaddress.ip_address("10.0.0.1"))]),
        (ALIAS, [x509.IPAddress(ipaddress.ip_address("2001:db8::1"))]),
    ],
    ids=["other-cn", "dns-only", "dns", "email", "uri", "ipv4", "ipv6"],
)
def test_no_other_name_verifies(
    issuer: tuple[Path, Path, ec.EllipticCurvePrivateKey],
    subject: x509.Name,
    alt_names: list[x509.GeneralName] | None,
    tmp_path: Path,
) -> None:
    run = _verify(issuer, subject, alt_names, tmp_path)
    assert run.returncode != 0, run.stdout
    assert "violation" in run.stdout + run.stderr


def test_the_fleet_ca_cannot_issue_one(tmp_path: Path) -> None:
    """A CA of path length 0 (the fleet's, which the broker trusts) signs no issuer."""
    fleet = CertificateAuthority.create(common_name="Fleet CA", directory=tmp_path / "fleet")
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(_name(DEVICE))
        .sign(key, hashes.SHA256())
    )
    with pytest.raises(InvalidRequest, match="path length"):
        fleet.sign_dice_device_id_csr(
            csr.public_bytes(serialization.Encoding.PEM), required_common_name=DEVICE
        )
