"""The DICE chain (manufacturer CA -> DeviceID -> Alias) checked by cryptography and OpenSSL.

The manufacturer CA and the DeviceID certificate are made here with
``cryptography``, as a factory would; the Alias certificate is the device's
own, built by ``device_runtime.rot.certificates`` and signed by the DeviceID
key. CPython only (OpenSSL runs as a subprocess).
"""

from __future__ import annotations

import datetime
import hashlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from device_runtime.core import der, der_parser
from device_runtime.core.errors import CryptoError, RootOfTrustError
from device_runtime.rot.certificates import NOT_AFTER, OID_TCB_INFO
from device_runtime.rot.dice import DiceRootOfTrust
from tests.components import binary
from tests.device_runtime.rot.backends import Backend

DEVICE_ID = "dice-0001"
START = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(True, False, False, False, False, cert_sign, cert_sign, False, False)


def _manufacturer_ca() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("Sevenfold Manufacturer CA"))
        .issuer_name(_name("Sevenfold Manufacturer CA"))
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(START)
        .not_valid_after(START.replace(year=2045))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _deviceid_certificate(
    ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate, csr_der: bytes
) -> x509.Certificate:
    """The factory's step: certify the DeviceID key from its CSR, as a CA for the Alias."""
    request = x509.load_der_x509_csr(csr_der)
    assert request.is_signature_valid
    return (
        x509.CertificateBuilder()
        .subject_name(request.subject)
        .issuer_name(ca.subject)
        .public_key(request.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(START)
        .not_valid_after(datetime.datetime(9999, 12, 31, 23, 59, 59, tzinfo=datetime.UTC))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .sign(ca_key, hashes.SHA256())
    )


@pytest.fixture
def backend() -> Iterator[Backend]:
    made = Backend("dice")
    yield made
    made.close()


def _chain(backend: Backend, firmware: str = "1.0.0") -> tuple[x509.Certificate, ...]:
    rot = backend.open("a", firmware)
    assert isinstance(rot, DiceRootOfTrust)
    ca_key, ca = _manufacturer_ca()
    deviceid = _deviceid_certificate(ca_key, ca, rot.csr(DEVICE_ID))
    alias_der, deviceid_der = rot.certificate_chain(
        deviceid.public_bytes(serialization.Encoding.DER), DEVICE_ID
    )
    assert deviceid_der == deviceid.public_bytes(serialization.Encoding.DER)
    return ca, deviceid, x509.load_der_x509_certificate(alias_der)


def test_chain_verifies_with_cryptography(backend: Backend) -> None:
    ca, deviceid, alias = _chain(backend)
    deviceid.verify_directly_issued_by(ca)
    alias.verify_directly_issued_by(deviceid)
    assert alias.issuer == deviceid.subject
    assert alias.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == DEVICE_ID
    assert alias.not_valid_after_utc.strftime("%Y%m%d%H%M%SZ") == NOT_AFTER
    assert alias.not_valid_before_utc == deviceid.not_valid_before_utc
    usage = alias.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and not usage.value.key_cert_sign
    rot = backend.open("a")
    point = alias.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    assert point == rot.attestation_key().public_key()


def test_tcb_info_extension_states_the_firmware(backend: Backend) -> None:
    _, _, alias = _chain(backend, "2.5.0")
    extension = alias.extensions.get_extension_for_oid(x509.ObjectIdentifier(OID_TCB_INFO))
    assert not extension.critical
    value = extension.value.public_bytes()
    fwid = hashlib.sha256(b"2.5.0").digest()
    expected = der.sequence(
        b"\x80\x09Sevenfold",
        b"\x81\x11conformance-board",
        b"\x82\x052.5.0",
        b"\x83\x01\x01",
        b"\x84\x01\x01",
        der.context(6, der.sequence(der.oid("2.16.840.1.101.3.4.2.1"), der.octet_string(fwid))),
    )
    assert value == expected


def test_alias_changes_with_the_firmware_deviceid_does_not(backend: Backend) -> None:
    _, deviceid_1, alias_1 = _chain(backend, "1.0.0")
    _, deviceid_2, alias_2 = _chain(backend, "1.0.1")
    assert deviceid_1.public_key() == deviceid_2.public_key()
    assert alias_1.public_key() != alias_2.public_key()


def test_the_alias_certificate_is_issued_once_per_boot(backend: Backend) -> None:
    rot = backend.open("a")
    ca_key, ca = _manufacturer_ca()
    deviceid = _deviceid_certificate(ca_key, ca, rot.csr(DEVICE_ID))
    deviceid_der = deviceid.public_bytes(serialization.Encoding.DER)
    signatures = []
    signer = rot._identity._sign  # the DeviceID key's signer: counts what it signs

    def counting(scalar: bytes, message: bytes) -> bytes:
        signatures.append(message)
        return signer(scalar, message)

    rot._identity._sign = counting
    first = rot.certificate_chain(deviceid_der, DEVICE_ID)
    assert rot.certificate_chain(deviceid_der, DEVICE_ID) == first
    assert len(signatures) == 1
    renamed = rot.certificate_chain(deviceid_der, "dice-0002")
    assert len(signatures) == 2
    alias = x509.load_der_x509_certificate(renamed[0])
    assert alias.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "dice-0002"
    other = _deviceid_certificate(ca_key, ca, backend.open("b").csr(DEVICE_ID))
    with pytest.raises(RootOfTrustError, match="another key"):
        rot.certificate_chain(other.public_bytes(serialization.Encoding.DER), DEVICE_ID)


def _pem(path: Path, cert: x509.Certificate) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def _openssl(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary("openssl"), *map(str, args)], capture_output=True, text=True, timeout=60
    )


def test_chain_verifies_with_openssl(backend: Backend, tmp_path: Path) -> None:
    ca, deviceid, alias = _chain(backend)
    files = [_pem(tmp_path / f"{n}.pem", c) for n, c in (("ca", ca), ("deviceid", deviceid))]
    leaf = _pem(tmp_path / "alias.pem", alias)
    result = _openssl("verify", "-CAfile", files[0], "-untrusted", files[1], leaf)
    assert result.returncode == 0 and result.stdout.strip().endswith(": OK"), result
    # Without the DeviceID certificate the Alias certificate has no path to the CA.
    alone = _openssl("verify", "-CAfile", files[0], leaf)
    assert alone.returncode != 0
    text = _openssl("x509", "-text", "-noout", "-in", leaf)
    assert text.returncode == 0 and "2.23.133.5.4.1" in text.stdout, text.stdout


def test_csr_verifies_with_openssl_and_names_the_device(backend: Backend, tmp_path: Path) -> None:
    request = backend.open("a").csr(DEVICE_ID)
    parsed = x509.load_der_x509_csr(request)
    assert parsed.is_signature_valid
    assert parsed.subject == _name(DEVICE_ID)
    path = tmp_path / "device.csr"
    path.write_bytes(request)
    result = _openssl("req", "-verify", "-inform", "DER", "-in", path, "-noout")
    assert result.returncode == 0, result
    assert "verify OK" in result.stdout + result.stderr


def test_alias_refused_for_a_certificate_of_another_key(backend: Backend) -> None:
    rot = backend.open("a")
    ca_key, ca = _manufacturer_ca()
    other = _deviceid_certificate(ca_key, ca, backend.open("b").csr(DEVICE_ID))
    with pytest.raises(RootOfTrustError, match="another key"):
        rot.certificate_chain(other.public_bytes(serialization.Encoding.DER), DEVICE_ID)
    with pytest.raises(CryptoError, match=r"truncated|tag|trailing"):
        rot.certificate_chain(b"\x30\x03\x02\x01", DEVICE_ID)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_certificate_parser_never_fails_unexplained(data: bytes) -> None:
    try:
        der_parser.certificate_fields(data)
    except CryptoError as exc:
        assert exc.reason


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=400), st.binary(min_size=1, max_size=4))
def test_a_mutated_certificate_is_refused_or_parsed(position: int, junk: bytes) -> None:
    cert = _manufacturer_ca()[1].public_bytes(serialization.Encoding.DER)
    mutated = cert[:position] + junk + cert[position + len(junk) :]
    try:
        fields = der_parser.certificate_fields(mutated)
    except CryptoError as exc:
        assert exc.reason
    else:
        assert len(fields["public_key"]) == 65
