"""The fleet CA issues certificates that standard RFC 5280 path validation accepts."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, SignatureAlgorithmOID
from cryptography.x509.verification import (
    ClientVerifier,
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from device_runtime.core.errors import CryptoError
from fleet_platform.broker_config import is_fleet_server_name
from fleet_platform.pki import (
    AuthorityUnavailable,
    CertificateAuthority,
    CommonNameMismatch,
    InvalidName,
    InvalidRequest,
    ReservedIdentity,
    check_host_name,
)
from fleet_platform.server_config import MAX_GATEWAY_PROCESSES
from fleet_platform.server_replicas import replica_identities


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> CertificateAuthority:
    return CertificateAuthority.create(
        common_name="PKI Test CA", directory=tmp_path_factory.mktemp("ca")
    )


def load_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def csr_for(
    common_names: list[str], key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | None = None
) -> tuple[bytes, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey]:
    key = key or ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn) for cn in common_names])
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(subject)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return request.public_bytes(serialization.Encoding.PEM), key


def client_verifier(authority: CertificateAuthority) -> ClientVerifier:
    """Web PKI rules, except that the identity is the CN: MQTT clients carry no SAN."""
    leaf = ExtensionPolicy.webpki_defaults_ee().may_be_present(
        x509.SubjectAlternativeName, Criticality.AGNOSTIC, None
    )
    return (
        PolicyBuilder()
        .store(Store([authority.certificate]))
        .extension_policies(ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=leaf)
        .build_client_verifier()
    )


def test_create_writes_ca_with_private_key_0600(authority: CertificateAuthority) -> None:
    key_path = authority.directory / "ca.key"
    assert authority.cert_path == authority.directory / "ca.pem"
    assert mode_of(key_path) == 0o600
    ca = load_cert(authority.cert_path)
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey)
    assert ca.signature_algorithm_oid == SignatureAlgorithmOID.ECDSA_WITH_SHA256
    ca.verify_directly_issued_by(ca)


def test_load_round_trips_and_signs_with_same_key(authority: CertificateAuthority) -> None:
    loaded = CertificateAuthority.load(authority.directory)
    assert loaded.certificate == authority.certificate
    pem, _ = csr_for(["dev-load"])
    issued = x509.load_pem_x509_certificate(loaded.sign_csr(pem))
    issued.verify_directly_issued_by(authority.certificate)


def test_create_refuses_to_overwrite(authority: CertificateAuthority) -> None:
    with pytest.raises(AuthorityUnavailable):
        CertificateAuthority.create(common_name="Other", directory=authority.directory)


def test_load_missing_garbage_and_mismatched_ca(tmp_path: Path) -> None:
    with pytest.raises(AuthorityUnavailable):
        CertificateAuthority.load(tmp_path / "nowhere")
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "ca.pem").write_bytes(b"not a certificate")
    (garbage / "ca.key").write_bytes(b"not a key")
    with pytest.raises(AuthorityUnavailable):
        CertificateAuthority.load(garbage)
    first = CertificateAuthority.create(common_name="First", directory=tmp_path / "first")
    second = CertificateAuthority.create(common_name="Second", directory=tmp_path / "second")
    (first.directory / "ca.key").write_bytes((second.directory / "ca.key").read_bytes())
    with pytest.raises(AuthorityUnavailable, match="does not match"):
        CertificateAuthority.load(first.directory)


def test_server_certificate_verifies_for_every_host(
    authority: CertificateAuthority, tmp_path: Path
) -> None:
    issued = authority.issue_server(
        common_name="broker", hosts=["127.0.0.1", "localhost"], directory=tmp_path, days=30
    )
    assert mode_of(issued.key_path) == 0o600
    cert = load_cert(issued.cert_path)
    store = Store([authority.certificate])
    for name in (x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")):
        chain = PolicyBuilder().store(store).build_server_verifier(name).verify(cert, [])
        assert chain[-1] == authority.certificate
    with pytest.raises(VerificationError):
        PolicyBuilder().store(store).build_server_verifier(x509.DNSName("example.org")).verify(
            cert, []
        )
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_client_certificate_chain_and_eku(authority: CertificateAuthority, tmp_path: Path) -> None:
    issued = authority.issue_client(common_name="dev-a", directory=tmp_path, days=1)
    assert mode_of(issued.key_path) == 0o600
    cert = load_cert(issued.cert_path)
    verified = client_verifier(authority).verify(cert, [])
    assert verified.chain[-1] == authority.certificate
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "dev-a"
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = authority.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert aki.key_identifier == ski.value.digest
    key = serialization.load_pem_private_key(issued.key_path.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    assert key.public_key() == cert.public_key()


def test_client_certificate_fails_server_verification(
    authority: CertificateAuthority, tmp_path: Path
) -> None:
    cert = load_cert(authority.issue_client(common_name="dev-b", directory=tmp_path).cert_path)
    verifier = (
        PolicyBuilder()
        .store(Store([authority.certificate]))
        .build_server_verifier(x509.DNSName("dev-b"))
    )
    with pytest.raises(VerificationError):
        verifier.verify(cert, [])


def test_sign_csr_keeps_only_key_and_name(authority: CertificateAuthority) -> None:
    pem, key = csr_for(["dev-tpm"])
    cert = x509.load_pem_x509_certificate(
        authority.sign_csr(pem, days=10, required_common_name="dev-tpm")
    )
    assert cert.public_key() == key.public_key()
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert client_verifier(authority).verify(cert, []).chain[-1] == authority.certificate
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert lifetime.days <= 10


def test_sign_csr_refuses_other_identity(authority: CertificateAuthority) -> None:
    pem, _ = csr_for(["dev-b"])
    with pytest.raises(CommonNameMismatch, match="dev-b"):
        authority.sign_csr(pem, required_common_name="dev-a")


@pytest.mark.parametrize(
    "blob",
    [
        b"",
        b"garbage",
        b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
    ],
)
def test_sign_csr_refuses_garbage(authority: CertificateAuthority, blob: bytes) -> None:
    with pytest.raises(InvalidRequest):
        authority.sign_csr(blob)


def test_sign_csr_refuses_forged_self_signature(authority: CertificateAuthority) -> None:
    pem, _ = csr_for(["dev-a"])
    request = x509.load_pem_x509_csr(pem)
    der = bytearray(request.public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0x01
    forged = x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM)
    with pytest.raises(InvalidRequest):
        authority.sign_csr(forged)


def test_sign_csr_refuses_non_p256_key(authority: CertificateAuthority) -> None:
    pem, _ = csr_for(["dev-a"], key=rsa.generate_private_key(public_exponent=65537, key_size=2048))
    with pytest.raises(InvalidRequest, match="P-256"):
        authority.sign_csr(pem)
    pem, _ = csr_for(["dev-a"], key=ec.generate_private_key(ec.SECP384R1()))
    with pytest.raises(InvalidRequest, match="P-256"):
        authority.sign_csr(pem)


@pytest.mark.parametrize("names", [[], ["dev-a", "dev-b"]])
def test_sign_csr_needs_exactly_one_common_name(
    authority: CertificateAuthority, names: list[str]
) -> None:
    pem, _ = csr_for(names)
    with pytest.raises(InvalidRequest, match="common name"):
        authority.sign_csr(pem)


@pytest.mark.parametrize("name", ["dev/+", "#", "a b", "x" * 65, "-lead"])
def test_unsafe_client_identities_refused(
    authority: CertificateAuthority, tmp_path: Path, name: str
) -> None:
    with pytest.raises(InvalidName):
        authority.issue_client(common_name=name, directory=tmp_path)
    if len(name) <= 64:
        pem, _ = csr_for([name])
        with pytest.raises(InvalidName):
            authority.sign_csr(pem)


def test_bad_hosts_and_validity_refused(authority: CertificateAuthority, tmp_path: Path) -> None:
    with pytest.raises(InvalidName):
        authority.issue_server(common_name="s", hosts=[], directory=tmp_path, days=1)
    with pytest.raises(InvalidName):
        authority.issue_server(common_name="s", hosts=["bad host!"], directory=tmp_path, days=1)
    with pytest.raises(InvalidName):
        authority.issue_server(common_name="s", hosts=[5], directory=tmp_path, days=1)  # type: ignore[list-item]
    with pytest.raises(InvalidName):
        authority.issue_client(common_name="dev-a", directory=tmp_path, days=0)


def test_issuing_over_the_ca_files_is_refused(authority: CertificateAuthority) -> None:
    with pytest.raises(InvalidName, match="overwrite"):
        authority.issue_client(common_name="ca", directory=authority.directory)
    CertificateAuthority.load(authority.directory)


def test_leaf_never_outlives_the_ca(tmp_path: Path) -> None:
    short = CertificateAuthority.create(common_name="Short", directory=tmp_path / "ca", days=2)
    issued = short.issue_client(common_name="dev-a", directory=tmp_path, days=400)
    assert load_cert(issued.cert_path).not_valid_after_utc <= short.certificate.not_valid_after_utc


@settings(max_examples=60, deadline=None)
@given(blob=st.binary(max_size=600))
def test_sign_csr_arbitrary_bytes_only_raise_crypto_errors(
    authority: CertificateAuthority, blob: bytes
) -> None:
    framed = (
        b"-----BEGIN CERTIFICATE REQUEST-----\n" + blob + b"\n-----END CERTIFICATE REQUEST-----\n"
    )
    for candidate in (blob, framed):
        with pytest.raises(CryptoError):
            authority.sign_csr(candidate)


SERVER_NAMES = [
    *replica_identities(MAX_GATEWAY_PROCESSES + 4),
    "sevenfold-server.backup",
    "Sevenfold-Server",
    "SEVENFOLD-SERVER.1",
]


@pytest.mark.parametrize("name", SERVER_NAMES)
def test_no_csr_gets_a_fleet_server_name_whatever_the_arguments(
    authority: CertificateAuthority, name: str
) -> None:
    """The broker grants these every device's topics: only keys the server made may hold them."""
    assert is_fleet_server_name(name)
    pem, _ = csr_for([name])
    with pytest.raises(ReservedIdentity, match="fleet server"):
        authority.sign_csr(pem)
    with pytest.raises(ReservedIdentity):
        authority.sign_csr(pem, required_common_name=name)
    with pytest.raises(ReservedIdentity):
        authority.sign_non_device_csr(pem, common_name=name)


@pytest.mark.parametrize(
    "name", ["ops.sensor-1", "fleet_platform.broker-probe", "Dev-A", "dev_a", "sevenfold-servers."]
)
def test_sign_csr_takes_only_device_ids(authority: CertificateAuthority, name: str) -> None:
    pem, _ = csr_for([name])
    with pytest.raises(InvalidName, match=r"not a device id.*sign_non_device_csr"):
        authority.sign_csr(pem)
    with pytest.raises(InvalidName):
        authority.sign_csr(pem, required_common_name=name)


def test_sign_csr_without_an_expected_name_still_signs_a_device(
    authority: CertificateAuthority,
) -> None:
    pem, key = csr_for(["sevenfold-servers"])  # a device id, however close to a server name
    cert = x509.load_pem_x509_certificate(authority.sign_csr(pem))
    assert cert.public_key() == key.public_key()
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "sevenfold-servers"


def test_a_client_that_is_no_device_is_signed_only_under_the_stated_name(
    authority: CertificateAuthority,
) -> None:
    pem, key = csr_for(["ops.sensor-1"])
    cert = x509.load_pem_x509_certificate(
        authority.sign_non_device_csr(pem, common_name="ops.sensor-1", days=5)
    )
    assert cert.public_key() == key.public_key()
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "ops.sensor-1"
    assert client_verifier(authority).verify(cert, []).chain[-1] == authority.certificate
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days <= 5
    with pytest.raises(CommonNameMismatch):
        authority.sign_non_device_csr(pem, common_name="ops.sensor-2")


def test_a_device_id_is_not_signed_as_a_non_device(authority: CertificateAuthority) -> None:
    pem, _ = csr_for(["dev-a"])
    with pytest.raises(InvalidName, match="is a device id"):
        authority.sign_non_device_csr(pem, common_name="dev-a")


@pytest.mark.parametrize("name", ["two words", "wild/+", "#", "", "x" * 65])
def test_a_non_device_name_must_be_a_safe_client_name(
    authority: CertificateAuthority, name: str
) -> None:
    pem, _ = csr_for(["ops.a"])
    with pytest.raises(InvalidName):
        authority.sign_non_device_csr(pem, common_name=name)


@pytest.mark.parametrize(
    "host", ["broker.fleet.test", "localhost", "10.0.0.7", "fd00::2", "a" * 63 + ".test"]
)
def test_host_names_a_certificate_can_hold(host: str) -> None:
    assert check_host_name(host) == host


@pytest.mark.parametrize(
    "host", ["", "two words", "*.fleet.test", "a..b", "-lead.test", "trail.", "a." * 127 + "b"]
)
def test_host_names_a_certificate_cannot_hold(host: str) -> None:
    with pytest.raises(InvalidName):
        check_host_name(host)
