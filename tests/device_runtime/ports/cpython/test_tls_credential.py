"""A derived root of trust's identity key reaches Python's ssl without touching the disk."""

from __future__ import annotations

import datetime
import os
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from device_runtime.core.errors import ConfigError
from device_runtime.ports.cpython.tls_credential import identity_key_file, private_key_pem
from device_runtime.simulator import csr_pem, open_root_of_trust
from tests.firmware_fixtures import SampleFirmware


@pytest.mark.parametrize("kind", ["software", "dice"])
def test_identity_key_loads_into_an_ssl_context(kind: str, tmp_path: Path) -> None:
    rot = open_root_of_trust(kind=kind, directory=tmp_path / "device")
    key = serialization.load_pem_private_key(private_key_pem(rot.identity_key()), None)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sim-0001")])
    start = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(x509.load_pem_x509_csr(csr_pem(rot.csr("sim-0001"))).public_key())
        .serial_number(1)
        .not_valid_before(start)
        .not_valid_after(start.replace(year=2035))
        .sign(key, hashes.SHA256())  # type: ignore[arg-type]
    )
    cert_path = tmp_path / "device.crt"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    with identity_key_file(rot) as key_path:
        assert str(key_path).startswith("/proc/self/fd/")
        context.load_cert_chain(certfile=str(cert_path), keyfile=str(key_path))
        fd = int(key_path.name)
    with pytest.raises(OSError):
        os.fstat(fd)
    assert not any(p.name.endswith((".key", ".pem")) for p in (tmp_path / "device").rglob("*"))


def test_dice_alias_follows_the_image_booted(
    tmp_path: Path, sample_firmware: SampleFirmware
) -> None:
    first, second = (sample_firmware.booted[version] for version in ("1.0.0", "1.1.0"))
    one = open_root_of_trust(kind="dice", directory=tmp_path, image=first)
    two = open_root_of_trust(kind="dice", directory=tmp_path, image=second)
    assert one.identity_key().public_key() == two.identity_key().public_key()
    assert one.attestation_key().public_key() != two.attestation_key().public_key()


def test_unknown_kind_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        open_root_of_trust(kind="tpm", directory=tmp_path)
