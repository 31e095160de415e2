"""What a verifier can prove about a TPM and its keys, from bytes alone (no I/O).

A device that claims a TPM hands over its EK certificate, the public area of
its EK and the public areas of its keys. From those this module proves:

* ``check_endorsement``: the EK certificate chains to a TPM maker's CA the
  verifier trusts, and certifies exactly the EK the device presented. The EK is
  then known to be inside a genuine TPM (that is what the maker's CA attests).
* ``resident_key_point``: a key's public area says the TPM generated it
  (``sensitiveDataOrigin``) and will never let it leave (``fixedTPM``,
  ``fixedParent``), and it is a plain ECC P-256 signing key.
* ``make_challenge``: TPM2_MakeCredential in software. Only the TPM that holds
  the EK's private part *and* a loaded object with exactly that public area
  (its name is the hash of the area) can recover ``secret`` with
  TPM2_ActivateCredential; a device that answers with ``secret`` proves the key
  with those attributes lives in the certified TPM.
* ``check_quote_key``: a key's public area is that of a TPM-resident,
  restricted P-256 signing key, which signs only what the TPM generated (a
  quote), never a digest its caller chose.
* ``verify_quote``: a TPM2_Quote from a restricted attestation key is over the
  verifier's nonce and over the PCR values the verifier was told.

Every refusal is a ``TpmIdentityError`` (or ``QuoteError``) with a reason.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from tpm2_pytss.constants import (  # type: ignore[import-untyped]
    TPM2_ALG,
    TPM2_ECC,
    TPM2_GENERATED,
    TPM2_ST,
    TPMA_OBJECT,
)
from tpm2_pytss.types import TPM2B_PUBLIC, TPMS_ATTEST  # type: ignore[import-untyped]
from tpm2_pytss.utils import make_credential  # type: ignore[import-untyped]

from device_runtime.rot.tpm import PCRS

SECRET_SIZE = 32
_RESIDENT = TPMA_OBJECT.FIXEDTPM | TPMA_OBJECT.FIXEDPARENT | TPMA_OBJECT.SENSITIVEDATAORIGIN


class TpmVerificationError(ValueError):
    """Bytes from a device that do not prove what they claim about its TPM."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TpmIdentityError(TpmVerificationError):
    """The EK certificate, the EK or a key's public area is refused."""


class QuoteError(TpmVerificationError):
    """A quote is not signed by the attestation key, not over the nonce or not over the PCRs."""


@dataclass(frozen=True, slots=True)
class Challenge:
    """A credential challenge: send the first two to the device, keep ``secret``."""

    credential_blob: bytes
    encrypted_secret: bytes
    secret: bytes


@dataclass(frozen=True, slots=True)
class QuoteInfo:
    """What a verified quote says besides the PCRs (for clock and reboot sanity checks)."""

    clock: int
    reset_count: int
    restart_count: int
    safe: bool
    firmware_version: int
    registers: tuple[int, ...]


def _public(data: bytes, what: str, error: type[TpmVerificationError]) -> Any:
    """Unmarshal a TPM2B_PUBLIC that must be exactly *data*."""
    if not isinstance(data, bytes) or len(data) < 4:
        raise error(f"{what} public area is missing or truncated")
    declared = int.from_bytes(data[:2], "big")
    if declared + 2 != len(data):
        raise error(f"{what} public area is {len(data)} bytes but declares {declared + 2}")
    try:
        public, used = TPM2B_PUBLIC.unmarshal(data)
    except Exception as exc:  # the TSS unmarshaller raises its own error types
        raise error(f"{what} public area is malformed: {exc}") from exc
    if used != len(data):
        raise error(f"{what} public area has trailing bytes")
    return public


def _attributes(public: Any) -> int:
    return int(public.publicArea.objectAttributes)


def _ecc_p256_point(public: Any, what: str, error: type[TpmVerificationError]) -> bytes:
    area = public.publicArea
    if int(area.type) != int(TPM2_ALG.ECC):
        raise error(f"{what} is not an ECC key")
    if int(area.parameters.eccDetail.curveID) != int(TPM2_ECC.NIST_P256):
        raise error(f"{what} is not on P-256")
    if int(area.nameAlg) != int(TPM2_ALG.SHA256):
        raise error(f"{what} is not named with SHA-256")
    x, y = bytes(area.unique.ecc.x), bytes(area.unique.ecc.y)
    # A TPM2B_ECC_PARAMETER may drop a coordinate's leading zero bytes (tpm2-tss does).
    if not 0 < len(x) <= 32 or not 0 < len(y) <= 32:
        raise error(f"{what} point is not two coordinates of at most 32 bytes")
    point = b"\x04" + x.rjust(32, b"\x00") + y.rjust(32, b"\x00")
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except ValueError as exc:
        raise error(f"{what} point is not on the curve") from exc
    return point


def _resident(public: Any, what: str, error: type[TpmVerificationError]) -> None:
    attributes = _attributes(public)
    for flag, name in (
        (TPMA_OBJECT.FIXEDTPM, "fixedTPM"),
        (TPMA_OBJECT.FIXEDPARENT, "fixedParent"),
        (TPMA_OBJECT.SENSITIVEDATAORIGIN, "sensitiveDataOrigin"),
        (TPMA_OBJECT.SIGN_ENCRYPT, "sign"),
    ):
        if not attributes & int(flag):
            raise error(f"{what} lacks {name}: it is not a TPM-resident signing key")


def resident_key_point(key_public: bytes) -> bytes:
    """The 65-byte SEC1 point of a TPM-resident, unrestricted ECC P-256 signing key."""
    public = _public(key_public, "key", TpmIdentityError)
    _resident(public, "key", TpmIdentityError)
    attributes = _attributes(public)
    if attributes & int(TPMA_OBJECT.RESTRICTED):
        raise TpmIdentityError("key is restricted (an attestation key, not a DeviceID key)")
    if attributes & int(TPMA_OBJECT.DECRYPT):
        raise TpmIdentityError("key is also a decryption key")
    return _ecc_p256_point(public, "key", TpmIdentityError)


def _quote_key_point(key_public: bytes, error: type[TpmVerificationError]) -> bytes:
    """The 65-byte SEC1 point of a TPM-resident, restricted ECC P-256 signing key."""
    public = _public(key_public, "quote key", error)
    _resident(public, "quote key", error)
    attributes = _attributes(public)
    if not attributes & int(TPMA_OBJECT.RESTRICTED):
        raise error("quote key is not restricted: it could sign a forged quote")
    if attributes & int(TPMA_OBJECT.DECRYPT):
        raise error("quote key is also a decryption key")
    return _ecc_p256_point(public, "quote key", error)


def check_quote_key(key_public: bytes) -> None:
    """Refuse unless *key_public* is a TPM-resident, restricted ECC P-256 signing key: one
    that signs only what the TPM generated, so its quotes can be believed once it is bound to
    a certified TPM (the credential challenge) and recorded with the device."""
    _quote_key_point(key_public, TpmIdentityError)


def _endorsement_key(ek_public: bytes) -> Any:
    public = _public(ek_public, "EK", TpmIdentityError)
    attributes = _attributes(public)
    wanted = (
        TPMA_OBJECT.FIXEDTPM
        | TPMA_OBJECT.FIXEDPARENT
        | TPMA_OBJECT.RESTRICTED
        | TPMA_OBJECT.DECRYPT
    )
    if attributes & int(wanted) != int(wanted) or attributes & int(TPMA_OBJECT.SIGN_ENCRYPT):
        raise TpmIdentityError("EK is not a restricted, fixed decryption key")
    return public


def check_endorsement(
    ek_cert_der: bytes, ek_public: bytes, trusted_cas: Sequence[x509.Certificate]
) -> None:
    """Refuse unless the EK certificate was issued by one of *trusted_cas* and certifies
    the key in *ek_public*. The CAs are trust anchors: the certificate must be issued
    directly by one of them (give the TPM maker's issuing CA)."""
    try:
        certificate = x509.load_der_x509_certificate(ek_cert_der)
    except (ValueError, TypeError) as exc:
        raise TpmIdentityError("EK certificate is not a DER X.509 certificate") from exc
    public = _endorsement_key(ek_public)
    if not any(_issued_by(certificate, ca) for ca in trusted_cas):
        raise TpmIdentityError("EK certificate is not issued by a trusted TPM CA")
    try:
        presented = serialization.load_der_public_key(public.publicArea.to_der())
    except Exception as exc:
        raise TpmIdentityError("EK public area holds no usable key") from exc
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    if certificate.public_key().public_bytes(der, spki) != presented.public_bytes(der, spki):
        raise TpmIdentityError("EK certificate is for another key than the EK presented")


def _issued_by(certificate: x509.Certificate, ca: x509.Certificate) -> bool:
    if certificate.issuer != ca.subject:
        return False
    try:
        constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return False
    if not constraints.ca:
        return False
    try:
        certificate.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def make_challenge(ek_public: bytes, key_public: bytes) -> Challenge:
    """TPM2_MakeCredential for the TPM-resident P-256 signing key *key_public* (a DeviceID key
    or a quote key: the caller checks which it must be) under the EK *ek_public*."""
    key = _public(key_public, "key", TpmIdentityError)
    _resident(key, "key", TpmIdentityError)
    _ecc_p256_point(key, "key", TpmIdentityError)
    ek = _endorsement_key(ek_public)
    secret = secrets.token_bytes(SECRET_SIZE)
    try:
        blob, encrypted = make_credential(ek, secret, key.get_name())
    except Exception as exc:
        raise TpmIdentityError(f"cannot make a credential for this EK: {exc}") from exc
    return Challenge(
        credential_blob=bytes(blob.marshal()),
        encrypted_secret=bytes(encrypted.marshal()),
        secret=secret,
    )


def answer_matches(challenge: Challenge, answer: bytes) -> bool:
    """Constant-time check of the device's answer to *challenge*."""
    return isinstance(answer, bytes) and hmac.compare_digest(answer, challenge.secret)


def verify_quote(
    ak_public: bytes,
    attest: bytes,
    signature: bytes,
    nonce: bytes,
    pcr_values: Mapping[int, bytes],
) -> QuoteInfo:
    """Refuse unless *attest* is a TPM2_Quote signed (ES256 raw r||s) by the restricted
    attestation key *ak_public*, over *nonce*, whose PCR digest is that of *pcr_values*
    (measurement register -> 32-byte value, exactly the registers quoted)."""
    point = _quote_key_point(ak_public, QuoteError)
    if not isinstance(signature, bytes) or len(signature) != 64:
        raise QuoteError("quote signature is not 64 bytes (r || s)")
    der = encode_dss_signature(
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    )
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    try:
        key.verify(der, attest, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as exc:
        raise QuoteError("quote signature does not verify with the attestation key") from exc
    try:
        parsed, used = TPMS_ATTEST.unmarshal(attest)
    except Exception as exc:
        raise QuoteError(f"quote is malformed: {exc}") from exc
    if used != len(attest):
        raise QuoteError("quote has trailing bytes")
    if int(parsed.magic) != int(TPM2_GENERATED.VALUE) or int(parsed.type) != int(
        TPM2_ST.ATTEST_QUOTE
    ):
        raise QuoteError("signed structure is not a TPM-generated quote")
    if not hmac.compare_digest(bytes(parsed.extraData), nonce):
        raise QuoteError("quote is not over this nonce")
    registers = _quoted_registers(parsed.attested.quote.pcrSelect)
    if set(registers) != set(pcr_values):
        raise QuoteError(f"quote covers registers {registers}, not {sorted(pcr_values)}")
    values = b""
    for register in registers:
        value = pcr_values[register]
        if not isinstance(value, bytes) or len(value) != 32:
            raise QuoteError(f"value of register {register} is not 32 bytes")
        values += value
    if not hmac.compare_digest(
        hashlib.sha256(values).digest(), bytes(parsed.attested.quote.pcrDigest)
    ):
        raise QuoteError("quoted PCR digest does not match the register values")
    clock = parsed.clockInfo
    return QuoteInfo(
        clock=int(clock.clock),
        reset_count=int(clock.resetCount),
        restart_count=int(clock.restartCount),
        safe=bool(clock.safe),
        firmware_version=int(parsed.firmwareVersion),
        registers=tuple(registers),
    )


def _quoted_registers(selection: Any) -> list[int]:
    """Measurement registers a quote's PCR selection covers (SHA-256 bank only)."""
    registers: list[int] = []
    for index in range(int(selection.count)):
        bank = selection.pcrSelections[index]
        bits = bytes(bank.pcrSelect)[: int(bank.sizeofSelect)]
        chosen = [i * 8 + b for i, byte in enumerate(bits) for b in range(8) if byte >> b & 1]
        if not chosen:
            continue
        if int(bank.hash) != int(TPM2_ALG.SHA256):
            raise QuoteError("quote selects PCRs outside the SHA-256 bank")
        for pcr in chosen:
            if pcr not in PCRS:
                raise QuoteError(f"quote selects PCR {pcr}, which backs no measurement register")
            registers.append(PCRS.index(pcr))
    return sorted(registers)
