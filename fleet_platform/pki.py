"""The fleet certificate authority: one P-256 CA that vouches for broker, server and devices.

Identity on the MQTT link comes from the certificate alone (the broker maps the
subject CN to the username), so this module is where an identity is decided. A
device whose key never leaves its root of trust sends a CSR; the CA signs it only
when the CSR proves possession of the key and names a device id (the identity
the caller expects, when it says one), and it copies nothing else from the
request. A CSR never gets a fleet server's name, whatever the caller asks: the
broker grants those every device's topics, so their keys are generated here.
"""

from __future__ import annotations

import datetime
import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from device_runtime.core import console, protocol
from device_runtime.core.errors import CryptoError, InvalidField
from device_runtime.ports.cpython.atomic_file import write_atomic
from fleet_platform.broker_config import is_fleet_server_name

CA_CERT_NAME = "ca.pem"
CA_KEY_NAME = "ca.key"

# A client CN becomes the broker username and is substituted for %u in ACL
# patterns, so it must not contain MQTT wildcards, level separators or spaces.
_CLIENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# Other subject names only have to fit X.509's 64-character CN bound.
_DISPLAY_NAME = re.compile(r"^[A-Za-z0-9][ -~]{0,63}$")
_DNS_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_DNS_NAME_MAX = 253
# Tolerates a modest clock difference between the CA host and the verifier.
_BACKDATE = datetime.timedelta(minutes=5)


class AuthorityUnavailable(CryptoError):
    """The CA's certificate or key is missing, unreadable or inconsistent."""

    code = "ca-unavailable"


class InvalidRequest(CryptoError):
    """A CSR is not well formed, its self-signature fails, or its key is not P-256."""

    code = "bad-csr"


class CommonNameMismatch(CryptoError):
    """A CSR asks for an identity other than the one the caller enrolled."""

    code = "cn-mismatch"


class InvalidName(CryptoError):
    """A requested subject name, host or validity cannot go into a certificate."""

    code = "bad-name"


class ReservedIdentity(CryptoError):
    """A CSR asks for a fleet server's name, which the broker grants every device's topics."""

    code = "reserved-identity"


@dataclass(frozen=True)
class IssuedCredential:
    """Where a freshly issued certificate and its private key (mode 0600) were written."""

    cert_path: Path
    key_path: Path


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _check_days(days: int) -> None:
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise InvalidName(f"validity must be a positive number of days, got {days!r}")


def _client_name(common_name: str) -> str:
    if not isinstance(common_name, str) or not _CLIENT_NAME.fullmatch(common_name):
        raise InvalidName(
            f"client identity {common_name!r} must be 1-64 characters of letters, digits, . _ -"
        )
    return common_name


def _display_name(common_name: str) -> str:
    if not isinstance(common_name, str) or not _DISPLAY_NAME.fullmatch(common_name):
        raise InvalidName(f"common name {common_name!r} must be 1-64 printable ASCII characters")
    return common_name


_NO_OTHER_NAMES: tuple[x509.GeneralName, ...] = (
    x509.DNSName("invalid."),
    x509.RFC822Name("nobody@invalid."),
    x509.UniformResourceIdentifier("invalid."),
    x509.IPAddress(ipaddress.ip_network("255.255.255.255/32")),
    x509.IPAddress(ipaddress.ip_network("::/128")),
)
"""Permitted subtrees no real name falls in (RFC 6761's ``invalid.``, the broadcast and
unspecified addresses): once a type is constrained, a name of that type outside its
permitted subtrees fails, so a DICE DeviceID can certify no DNS name, mail address,
URI or IP address at all — only directory names under its own."""


def dice_device_id_constraints(device_id: str) -> x509.NameConstraints:
    """The name constraints of *device_id*'s DICE DeviceID certificate: its own name only."""
    return x509.NameConstraints(
        permitted_subtrees=[x509.DirectoryName(_subject(device_id)), *_NO_OTHER_NAMES],
        excluded_subtrees=None,
    )


def _subject(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def check_host_name(host: str) -> str:
    """*host* if it can go into a server certificate's subjectAltName: an IP address or DNS name.

    Clients check the name they dialled against that list, so a name that is
    not exactly one of these forms could never be matched. No wildcards: each
    name the broker answers to is listed.
    """
    _host_name(host)
    return host


def _host_name(host: str) -> x509.GeneralName:
    if not isinstance(host, str):
        raise InvalidName(f"host {host!r} must be given as text")
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        pass
    if len(host) > _DNS_NAME_MAX or not all(
        _DNS_LABEL.fullmatch(label) for label in host.split(".")
    ):
        raise InvalidName(f"host {host!r} is neither an IP address nor a DNS name")
    return x509.DNSName(host)


def _not_a_server(common_name: str) -> None:
    if is_fleet_server_name(common_name):
        raise ReservedIdentity(
            f"a CSR for {common_name!r} is refused: that is a fleet server's name, which the"
            f" broker grants every device's topics; server keys are generated by the server"
            f" itself (CertificateAuthority.issue_client)"
        )


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert_pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


class CertificateAuthority:
    """A self-signed P-256 CA kept as ``ca.pem`` and ``ca.key`` (0600) in one directory."""

    def __init__(
        self,
        *,
        certificate: x509.Certificate,
        private_key: ec.EllipticCurvePrivateKey,
        directory: Path,
    ) -> None:
        self._certificate = certificate
        self._key = private_key
        self._directory = directory

    @classmethod
    def create(
        cls, *, common_name: str, directory: Path, days: int = 3650, issues_issuers: bool = False
    ) -> CertificateAuthority:
        """Generate a new CA; refuses to overwrite one, since that would orphan the fleet.

        A fleet CA issues end-entity certificates only (``pathLenConstraint`` 0).
        A manufacturer CA (*issues_issuers*) also issues DICE DeviceID
        certificates, each of which issues its device's Alias certificate, so
        its path length is 1.
        """
        _display_name(common_name)
        _check_days(days)
        directory = Path(directory)
        if (directory / CA_KEY_NAME).exists() or (directory / CA_CERT_NAME).exists():
            raise AuthorityUnavailable(f"a CA already exists in {directory}")
        key = ec.generate_private_key(ec.SECP256R1())
        public = key.public_key()
        now = _utc_now()
        certificate = (
            x509.CertificateBuilder()
            .subject_name(_subject(common_name))
            .issuer_name(_subject(common_name))
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(
                x509.BasicConstraints(ca=True, path_length=1 if issues_issuers else 0),
                critical=True,
            )
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(key, hashes.SHA256())
        )
        write_atomic(directory / CA_KEY_NAME, _key_pem(key), mode=0o600)
        write_atomic(directory / CA_CERT_NAME, _cert_pem(certificate), mode=0o600)
        return cls(certificate=certificate, private_key=key, directory=directory)

    @classmethod
    def load(cls, directory: Path) -> CertificateAuthority:
        """Open an existing CA, checking that its key is P-256 and matches its certificate."""
        directory = Path(directory)
        try:
            cert_pem = (directory / CA_CERT_NAME).read_bytes()
            key_pem = (directory / CA_KEY_NAME).read_bytes()
        except OSError as exc:
            raise AuthorityUnavailable(f"cannot read the CA in {directory}: {exc}") from exc
        try:
            certificate = x509.load_pem_x509_certificate(cert_pem)
            key = serialization.load_pem_private_key(key_pem, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise AuthorityUnavailable(f"the CA in {directory} is not valid PEM: {exc}") from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(
            key.curve, ec.SECP256R1
        ):
            raise AuthorityUnavailable(f"the CA key in {directory} is not an ECDSA P-256 key")
        if key.public_key() != certificate.public_key():
            raise AuthorityUnavailable(f"the CA key in {directory} does not match ca.pem")
        return cls(certificate=certificate, private_key=key, directory=directory)

    @property
    def directory(self) -> Path:
        return self._directory

    @property
    def cert_path(self) -> Path:
        return self._directory / CA_CERT_NAME

    @property
    def certificate(self) -> x509.Certificate:
        return self._certificate

    def issue_server(
        self, *, common_name: str, hosts: list[str], directory: Path, days: int = 825
    ) -> IssuedCredential:
        """Key and certificate for a TLS server reachable under *hosts* (all go in the SAN)."""
        _display_name(common_name)
        if not hosts:
            raise InvalidName("a server certificate needs at least one host name or address")
        names = [_host_name(host) for host in hosts]
        key = ec.generate_private_key(ec.SECP256R1())
        certificate = self._build_leaf(
            common_name=common_name,
            public_key=key.public_key(),
            usage=ExtendedKeyUsageOID.SERVER_AUTH,
            days=days,
            alt_names=names,
        )
        return self._store(Path(directory), common_name, certificate, key)

    def issue_client(
        self, *, common_name: str, directory: Path, days: int = 825
    ) -> IssuedCredential:
        """Key and certificate for an MQTT client whose broker username will be *common_name*."""
        _client_name(common_name)
        key = ec.generate_private_key(ec.SECP256R1())
        certificate = self._build_leaf(
            common_name=common_name,
            public_key=key.public_key(),
            usage=ExtendedKeyUsageOID.CLIENT_AUTH,
            days=days,
            alt_names=None,
        )
        return self._store(Path(directory), common_name, certificate, key)

    def sign_csr(
        self, csr_pem: bytes, *, days: int = 825, required_common_name: str | None = None
    ) -> bytes:
        """Device certificate (PEM) for a key held elsewhere, e.g. inside a TPM.

        The CSR's CN must be a device id (``protocol.check_device_id``), and
        *required_common_name* when given: a device's CN is its broker username
        and its topic level, so nothing else may come through here. A fleet
        server's name is refused (:class:`ReservedIdentity`) whatever the
        arguments. Only the public key and the CN are taken from the request;
        every extension is chosen here, so a device cannot ask for CA or server
        rights. A client that is not a device goes through
        :meth:`sign_non_device_csr`, which says so in its name.
        """
        common_name, public = _read_request(csr_pem)
        _expect(common_name, required_common_name)
        _not_a_server(common_name)
        try:
            protocol.check_device_id(common_name)
        except InvalidField as exc:
            raise InvalidName(
                f"the CSR's common name is not a device id ({exc.reason}); a client that is"
                f" not a device needs CertificateAuthority.sign_non_device_csr"
            ) from None
        return self._client_certificate(common_name, public, days)

    def sign_dice_device_id_csr(
        self, csr_pem: bytes, *, required_common_name: str, days: int = 825
    ) -> bytes:
        """A DICE DeviceID certificate (PEM): the one certificate here that may issue another.

        A DICE device's DeviceID key certifies its own Alias key (the firmware
        layer's), so its certificate is a CA with ``pathLenConstraint`` 0, key
        usage digitalSignature and keyCertSign, and a name constraint that
        permits only names under the device's own (``CN=<device id>``): it can
        vouch for its Alias key and nothing else. Only a manufacturer CA signs
        these (the factory station); the fleet CA, which the broker trusts,
        never does. The CSR is checked as :meth:`sign_csr` checks it.
        """
        constraints = self._certificate.extensions.get_extension_for_class(x509.BasicConstraints)
        if not constraints.value.path_length:
            raise InvalidRequest(
                "this CA's path length is 0 (a fleet CA): it issues no DeviceID issuer;"
                " a manufacturer CA (CertificateAuthority.create(issues_issuers=True)) does"
            )
        common_name, public = _read_request(csr_pem)
        _expect(common_name, required_common_name)
        _not_a_server(common_name)
        try:
            protocol.check_device_id(common_name)
        except InvalidField as exc:
            raise InvalidName(f"the CSR's common name is not a device id ({exc.reason})") from None
        own_names = dice_device_id_constraints(common_name)
        certificate = self._build_leaf(
            common_name=common_name,
            public_key=public,
            usage=ExtendedKeyUsageOID.CLIENT_AUTH,
            days=days,
            alt_names=None,
            issues=own_names,
        )
        return _cert_pem(certificate)

    def sign_console_authorization(self, message: bytes) -> bytes:
        """ES256 (raw r || s) over a provisioning console's unlock request, by this CA's key.

        Only messages of ``device_runtime.core.console.reprovision_message``'s
        form are signed: they start with bytes no DER structure starts with,
        so the signature cannot be passed off as one over a certificate.
        """
        if not message.startswith(console.REPROVISION) or len(message) > 256:
            raise InvalidRequest("only a console's reprovision message is signed here")
        r, s = decode_dss_signature(self._key.sign(message, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    def sign_attested_key(
        self, public_point: bytes, *, device_id: str, lifetime: datetime.timedelta
    ) -> x509.Certificate:
        """A short-lived fleet certificate for a key attestation proved the device holds.

        The RATS passport: issued only after a passing appraisal, for the key
        that signed the evidence (DICE's Alias key, a TPM's DeviceID key), so
        there is no CSR: the evidence signature was the proof of possession.
        The name is the device id the broker bound the request to; a fleet
        server's name is refused as everywhere else.
        """
        _not_a_server(device_id)
        try:
            protocol.check_device_id(device_id)
        except InvalidField as exc:
            raise InvalidName(f"{device_id!r} is not a device id ({exc.reason})") from None
        if not datetime.timedelta(minutes=5) <= lifetime <= datetime.timedelta(days=30):
            raise InvalidName(f"a fleet certificate lives 5 minutes to 30 days, not {lifetime}")
        try:
            key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), public_point)
        except ValueError as exc:
            raise InvalidRequest(f"not a P-256 point: {exc}") from None
        return self._build_leaf(
            common_name=device_id,
            public_key=key,
            usage=ExtendedKeyUsageOID.CLIENT_AUTH,
            days=1,
            alt_names=None,
            lifetime=lifetime,
        )

    def sign_non_device_csr(self, csr_pem: bytes, *, common_name: str, days: int = 825) -> bytes:
        """Client certificate (PEM) for a CSR naming exactly *common_name*, which is no device id.

        For a client the caller knows by name, such as a tool or a sensor, that
        should not look like a device. The name must be stated, never taken from
        the request, because the certificate gets whatever the broker's ACL
        grants that username. Fleet server names are refused like in
        :meth:`sign_csr`; so are device ids, which belong to :meth:`sign_csr`.
        """
        _client_name(common_name)
        requested, public = _read_request(csr_pem)
        _expect(requested, common_name)
        _not_a_server(common_name)
        try:
            protocol.check_device_id(common_name)
        except InvalidField:
            pass
        else:
            raise InvalidName(
                f"{common_name!r} is a device id; sign a device's CSR with"
                f" CertificateAuthority.sign_csr"
            )
        return self._client_certificate(common_name, public, days)

    def _client_certificate(
        self, common_name: str, public: ec.EllipticCurvePublicKey, days: int
    ) -> bytes:
        _client_name(common_name)
        certificate = self._build_leaf(
            common_name=common_name,
            public_key=public,
            usage=ExtendedKeyUsageOID.CLIENT_AUTH,
            days=days,
            alt_names=None,
        )
        return _cert_pem(certificate)

    def _build_leaf(
        self,
        *,
        common_name: str,
        public_key: ec.EllipticCurvePublicKey,
        usage: x509.ObjectIdentifier,
        days: int,
        alt_names: list[x509.GeneralName] | None,
        issues: x509.NameConstraints | None = None,
        lifetime: datetime.timedelta | None = None,
    ) -> x509.Certificate:
        """An end-entity certificate, or with *issues* one that may sign one level below it,
        for the names those constraints permit; valid *days*, or *lifetime* when given."""
        _check_days(days)
        now = _utc_now()
        span = lifetime if lifetime is not None else datetime.timedelta(days=days)
        not_after = min(now + span, self._certificate.not_valid_after_utc)
        ca_ski = self._certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_subject(common_name))
            .issuer_name(self._certificate.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(not_after)
            .add_extension(
                x509.BasicConstraints(ca=issues is not None, path_length=0 if issues else None),
                critical=True,
            )
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=issues is not None,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski.value),
                critical=False,
            )
        )
        if alt_names:
            builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        if issues is not None:
            builder = builder.add_extension(issues, critical=True)
        return builder.sign(self._key, hashes.SHA256())

    def _store(
        self,
        directory: Path,
        common_name: str,
        certificate: x509.Certificate,
        key: ec.EllipticCurvePrivateKey,
    ) -> IssuedCredential:
        stem = common_name.replace(" ", "_").replace("/", "_")
        credential = IssuedCredential(
            cert_path=directory / f"{stem}.pem", key_path=directory / f"{stem}.key"
        )
        own = {self.cert_path.resolve(), (self._directory / CA_KEY_NAME).resolve()}
        if {credential.cert_path.resolve(), credential.key_path.resolve()} & own:
            raise InvalidName(f"issuing {common_name!r} here would overwrite the CA itself")
        write_atomic(credential.key_path, _key_pem(key), mode=0o600)
        write_atomic(credential.cert_path, _cert_pem(certificate), mode=0o600)
        return credential


def _read_request(csr_pem: bytes) -> tuple[str, ec.EllipticCurvePublicKey]:
    """The CN and P-256 public key of a CSR whose self-signature proves possession of the key."""
    if not isinstance(csr_pem, bytes):
        raise InvalidRequest("a CSR must be given as PEM bytes")
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError as exc:
        raise InvalidRequest(f"not a PEM certificate signing request: {exc}") from exc
    try:
        self_signed = csr.is_signature_valid
        public = csr.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise InvalidRequest(f"the CSR cannot be checked: {exc}") from exc
    if not self_signed:
        raise InvalidRequest("the CSR's self-signature does not verify")
    if not isinstance(public, ec.EllipticCurvePublicKey) or not isinstance(
        public.curve, ec.SECP256R1
    ):
        raise InvalidRequest("the CSR key is not an ECDSA P-256 key")
    names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(names) != 1 or not isinstance(names[0].value, str):
        raise InvalidRequest("the CSR subject must hold exactly one common name")
    return names[0].value, public


def _expect(common_name: str, required: str | None) -> None:
    if required is not None and common_name != required:
        raise CommonNameMismatch(f"the CSR asks for {common_name!r} but {required!r} was enrolled")


FLEET_CA_NAME = "Sevenfold Fleet CA"


ATTESTATION_CA_NAME = "Sevenfold attestation CA"


def attestation_authority(state_dir: Path) -> CertificateAuthority:
    """The CA of attestation passes (and of the servers' own client certificates), created
    on first start: apart from the fleet CA, so that the managed broker's fleet listener can
    refuse every device certificate that is not a current pass."""
    directory = state_dir / "attestation-ca"
    if (directory / "ca.pem").exists():
        return CertificateAuthority.load(directory)
    return CertificateAuthority.create(common_name=ATTESTATION_CA_NAME, directory=directory)


def fleet_authority(state_dir: Path) -> CertificateAuthority:
    """The fleet CA of this installation, created on first start."""
    directory = state_dir / "pki"
    if (directory / "ca.pem").exists():
        return CertificateAuthority.load(directory)
    return CertificateAuthority.create(common_name=FLEET_CA_NAME, directory=directory)
