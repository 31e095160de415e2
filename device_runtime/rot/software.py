"""Software root of trust: a P-256 key in a 0600 file. For development only.

It exists so that the simulator and CI can run the full protocol without
hardware; every piece of evidence it produces says ``rot = "software"`` so a
verifier can refuse it in production.
"""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from device_runtime.core.errors import CryptoError
from device_runtime.ports.cpython.atomic_file import write_atomic

KIND = "software"
_KEY_FILE = "device.key"


class SoftwareRootOfTrust:
    """Holds the device key; callers get signatures and public material, never the key."""

    def __init__(self, *, directory: Path, key: ec.EllipticCurvePrivateKey) -> None:
        self.directory = directory
        self._key = key

    @classmethod
    def open(cls, *, directory: Path) -> SoftwareRootOfTrust:
        """Load the device key, generating it on first boot."""
        path = directory / _KEY_FILE
        if path.exists():
            try:
                loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
            except ValueError as exc:
                raise CryptoError(f"device key in {path} is unreadable") from exc
            if not isinstance(loaded, ec.EllipticCurvePrivateKey) or not isinstance(
                loaded.curve, ec.SECP256R1
            ):
                raise CryptoError(f"device key in {path} is not a P-256 key")
            return cls(directory=directory, key=loaded)
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        write_atomic(path, pem, mode=0o600)
        return cls(directory=directory, key=key)

    @property
    def key_path(self) -> Path:
        """Where TLS stacks that only take files find the key (software backend only)."""
        return self.directory / _KEY_FILE

    def public_key(self) -> bytes:
        """Uncompressed SEC1 point, the form the device core's verifier takes."""
        return self._key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )

    def sign(self, message: bytes) -> bytes:
        """ES256 signature as raw r||s (COSE's form)."""
        r, s = decode_dss_signature(self._key.sign(message, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    def csr(self, *, common_name: str) -> bytes:
        """A PEM CSR so a CA can certify the key without ever seeing it."""
        request = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .sign(self._key, hashes.SHA256())
        )
        return request.public_bytes(serialization.Encoding.PEM)
