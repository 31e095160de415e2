"""The manufacturer CAs a fleet server trusts to vouch for the DeviceID certificates of boards.

A factory station registers a board with the certificate its manufacturer CA
gave the board's DeviceID key; the server records that board as proven only
when one of the CAs trusted here issued that certificate. Trusting a CA copies
its certificate into the state directory (``manufacturer-cas/<sha256 of the
DER>.pem``, 0600, written atomically), so the trust survives restarts and a
running server sees a CA trusted after it started: the registration reads the
directory on every request. Distrusting one is deleting its file.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from device_runtime.core.errors import ConfigError
from device_runtime.ports.cpython.atomic_file import write_atomic

log = logging.getLogger(__name__)

DIRECTORY = "manufacturer-cas"


def is_ca_certificate(certificate: x509.Certificate) -> bool:
    """CA:TRUE in its basic constraints and keyCertSign in its key usage."""
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return False
    return constraints.ca and usage.key_cert_sign


def trust_manufacturer_ca(state_dir: Path, source: Path | bytes) -> Path:
    """Trust the CA certificate(s) in *source* (a PEM file, or PEM); the (last) file written.

    What ``sevenfold server --manufacturer-ca`` does for each file it is given.
    Refuses (:class:`ConfigError`) anything that is not PEM of CA certificates
    allowed to sign certificates. Trusting one CA twice writes one file.
    """
    if isinstance(source, Path):
        try:
            pem = source.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read the manufacturer CA {source}: {exc}") from None
    else:
        pem = source
    try:
        certificates = x509.load_pem_x509_certificates(pem)
    except ValueError as exc:
        raise ConfigError(f"a manufacturer CA must be PEM certificates: {exc}") from None
    written = None
    for certificate in certificates:
        if not is_ca_certificate(certificate):
            raise ConfigError(
                f"{certificate.subject.rfc4514_string()[:80]!r} is not a CA certificate"
                " (CA:TRUE with keyCertSign), so it cannot be a manufacturer CA"
            )
        der = certificate.public_bytes(serialization.Encoding.DER)
        written = state_dir / DIRECTORY / f"{hashlib.sha256(der).hexdigest()}.pem"
        write_atomic(written, certificate.public_bytes(serialization.Encoding.PEM), mode=0o600)
    if written is None:
        raise ConfigError("a manufacturer CA file holds no certificate")
    return written


def trusted_manufacturer_cas(state_dir: Path) -> list[x509.Certificate]:
    """Every manufacturer CA trusted in *state_dir*, read now; a damaged file is skipped."""
    trusted = []
    for path in sorted((state_dir / DIRECTORY).glob("*.pem")):
        try:
            certificate = x509.load_pem_x509_certificate(path.read_bytes())
        except (OSError, ValueError) as exc:
            log.warning("ignoring the damaged manufacturer CA %s: %s", path, exc)
            continue
        if is_ca_certificate(certificate):
            trusted.append(certificate)
        else:
            log.warning("ignoring %s: not a CA certificate", path)
    return trusted
