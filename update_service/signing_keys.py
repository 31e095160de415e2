"""P-256 keys for TUF metadata: generated, written and read as PEM files.

Every role of the repository signs with ECDSA P-256 (``ecdsa-sha2-nistp256``):
the curve the devices already verify for their images and their fleet link,
so a device needs no second signature algorithm to follow its updates. Root
keys are made by operators on an offline machine and travel as PEM files;
online keys are made by the server and never leave its state directory.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from securesystemslib.signer import CryptoSigner, SSlibKey

from device_runtime.core.errors import CryptoError
from device_runtime.ports.cpython.atomic_file import write_atomic
from device_runtime.ports.cpython.bounded_file import MAX_PEM_FILE, read_bounded

SCHEME = "ecdsa-sha2-nistp256"
"""A PEM P-256 key is a few hundred bytes; anything far larger is not one."""


def generate_signer() -> CryptoSigner:
    """A fresh P-256 signing key."""
    return CryptoSigner(ec.generate_private_key(ec.SECP256R1()))


def write_private_key(path: Path, signer: CryptoSigner) -> None:
    """The private key as PKCS#8 PEM, readable by its owner only."""
    write_atomic(path, signer.private_bytes, mode=0o600)


def public_pem(key: SSlibKey) -> bytes:
    """The public key as SubjectPublicKeyInfo PEM, for the operator to carry or publish."""
    return key.keyval["public"].encode("ascii")  # type: ignore[no-any-return]


def read_signer(path: Path) -> CryptoSigner:
    """The P-256 private key in *path*, ready to sign; anything else is refused with why."""
    pem = read_bounded(path, MAX_PEM_FILE, what="key file")
    try:
        private = serialization.load_pem_private_key(pem, password=None)
    except TypeError as exc:
        raise CryptoError(f"{path} is encrypted; give an unencrypted PEM key") from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise CryptoError(f"{path} is not a PEM private key") from exc
    if not isinstance(private, ec.EllipticCurvePrivateKey) or not isinstance(
        private.curve, ec.SECP256R1
    ):
        raise CryptoError(f"{path} is not an ECDSA P-256 key")
    return CryptoSigner(private)


def read_public_key(path: Path) -> SSlibKey:
    """The P-256 public key in *path*; a file holding a private key is refused.

    The server reads root keys this way (``keys init``, ``keys rotate root``),
    and a root key's private half must never reach it: the offline root is
    what lets the operators take back a server that was broken into. Refusing
    the file says so at the moment the mistake is made, rather than taking
    the public half and leaving the private one on the server's disk.
    """
    pem = read_bounded(path, MAX_PEM_FILE, what="key file")
    if b"PRIVATE KEY" in pem:
        raise CryptoError(
            f"{path} holds a private key: a root key's private half never goes on the server;"
            " give its public half (the .pub.pem `keys create-root-key` wrote beside it, or"
            " `openssl ec -in KEY.pem -pubout`)"
        )
    return public_key_from_pem(pem, str(path))


def public_key_from_pem(pem: bytes, source: str) -> SSlibKey:
    """The P-256 public key *pem* (from *source*, for the reason), as TUF metadata lists it."""
    try:
        public = serialization.load_pem_public_key(pem)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise CryptoError(f"{source} is not a PEM public key") from exc
    if not isinstance(public, ec.EllipticCurvePublicKey) or not isinstance(
        public.curve, ec.SECP256R1
    ):
        raise CryptoError(f"{source} is not an ECDSA P-256 key")
    return SSlibKey.from_crypto(public, scheme=SCHEME)
