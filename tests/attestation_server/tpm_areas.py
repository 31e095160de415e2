"""TPM public areas made without a TPM, for the checks a verifier makes on bytes alone.

A public area only claims its attributes; these areas claim what a test needs
(TPM-resident, restricted, ...) for a key a TPM never saw.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from tpm2_pytss.constants import TPMA_OBJECT  # type: ignore[import-untyped]
from tpm2_pytss.types import TPM2B_PUBLIC, TPMT_PUBLIC  # type: ignore[import-untyped]

RESIDENT = (
    TPMA_OBJECT.FIXEDTPM
    | TPMA_OBJECT.FIXEDPARENT
    | TPMA_OBJECT.SENSITIVEDATAORIGIN
    | TPMA_OBJECT.USERWITHAUTH
    | TPMA_OBJECT.SIGN_ENCRYPT
)
"""The attributes of a TPM-resident signing key (a DeviceID key's)."""
QUOTE_KEY = RESIDENT | TPMA_OBJECT.RESTRICTED
"""The attributes of a quote key: resident and restricted."""


def software_public(attributes: int) -> bytes:
    """A TPM2B_PUBLIC for a fresh software P-256 key with the given attributes."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    area = TPMT_PUBLIC.from_pem(pem, objectAttributes=attributes)
    return bytes(TPM2B_PUBLIC(publicArea=area).marshal())


def without_attributes(public: bytes, attributes: int) -> bytes:
    """*public* (a TPM2B_PUBLIC) no longer claiming *attributes*, its other claims kept."""
    area, _ = TPM2B_PUBLIC.unmarshal(public)
    area.publicArea.objectAttributes = int(area.publicArea.objectAttributes) & ~attributes
    return bytes(area.marshal())
