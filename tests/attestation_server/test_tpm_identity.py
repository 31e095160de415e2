"""The TPM identity checks a factory makes: a real swtpm passes them, impostors do not."""

from __future__ import annotations

import contextlib
import datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st
from tpm2_pytss import ESAPI  # type: ignore[import-untyped]
from tpm2_pytss.constants import TPMA_OBJECT  # type: ignore[import-untyped]
from tpm2_pytss.types import (  # type: ignore[import-untyped]
    TPM2B_PUBLIC,
    TPM2B_SENSITIVE_CREATE,
    TPMT_PUBLIC,
)

from attestation_server.tpm_identity import (
    TpmIdentityError,
    answer_matches,
    check_endorsement,
    check_quote_key,
    make_challenge,
    resident_key_point,
)
from device_runtime.core.errors import RootOfTrustError
from device_runtime.rot.tpm import SRK_HANDLE, TpmRootOfTrust, _ecc_template
from device_runtime.simulated_tpm import SimulatedTpm
from tests.attestation_server.tpm_areas import QUOTE_KEY, RESIDENT, software_public
from tests.swtpm_fixtures import swtpm

__all__ = ["swtpm"]


def _ca(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


RESIDENT_LOOKING = software_public(int(RESIDENT))


def test_real_tpm_proves_its_identity_and_quote_keys(swtpm: SimulatedTpm) -> None:
    rot = TpmRootOfTrust.open(tcti=swtpm.tcti)
    try:
        ek_cert = rot.endorsement_certificate()
        ek_public = rot.endorsement_public()
        check_endorsement(ek_cert, ek_public, [_ca(swtpm.ek_ca_certificate)])
        assert resident_key_point(rot.identity_public()) == rot.identity_key().public_key()
        challenge = make_challenge(ek_public, rot.identity_public())
        answer = rot.activate_credential(challenge.credential_blob, challenge.encrypted_secret)
        assert answer_matches(challenge, answer)
        # A challenge for another key's name is not answerable by the DeviceID key.
        other = make_challenge(ek_public, rot.attestation_public())
        with pytest.raises(RootOfTrustError):
            rot.activate_credential(other.credential_blob, other.encrypted_secret)
        with pytest.raises(RootOfTrustError, match="malformed"):
            rot.activate_credential(b"\x00", b"")
        # The quote key: restricted, so no DeviceID key, but proven the same way.
        check_quote_key(rot.quote_public())
        quote = make_challenge(ek_public, rot.quote_public())
        answer = rot.activate_credential(quote.credential_blob, quote.encrypted_secret, "quote")
        assert answer_matches(quote, answer)
        with pytest.raises(RootOfTrustError):
            rot.activate_credential(quote.credential_blob, quote.encrypted_secret, "identity")
        with pytest.raises(RootOfTrustError, match="no key 'evidence'"):
            rot.activate_credential(quote.credential_blob, quote.encrypted_secret, "evidence")
    finally:
        rot.close()


def test_duplicable_key_is_refused(swtpm: SimulatedTpm) -> None:
    rot = TpmRootOfTrust.open(tcti=swtpm.tcti)
    ek_public = rot.endorsement_public()
    rot.close()
    esapi = ESAPI(swtpm.tcti)
    try:
        srk = esapi.tr_from_tpmpublic(SRK_HANDLE)
        template = _ecc_template(restricted=False)
        template.publicArea.objectAttributes = (
            TPMA_OBJECT.SENSITIVEDATAORIGIN | TPMA_OBJECT.USERWITHAUTH | TPMA_OBJECT.SIGN_ENCRYPT
        )
        _, public, _, _, _ = esapi.create(srk, TPM2B_SENSITIVE_CREATE(), template)
    finally:
        esapi.close()
    duplicable = bytes(public.marshal())
    with pytest.raises(TpmIdentityError, match="fixedTPM"):
        resident_key_point(duplicable)
    with pytest.raises(TpmIdentityError, match="fixedTPM"):
        make_challenge(ek_public, duplicable)


def test_restricted_or_decrypting_keys_are_not_device_ids() -> None:
    with pytest.raises(TpmIdentityError, match="restricted"):
        resident_key_point(software_public(int(RESIDENT | TPMA_OBJECT.RESTRICTED)))
    with pytest.raises(TpmIdentityError, match="decryption"):
        resident_key_point(software_public(int(RESIDENT | TPMA_OBJECT.DECRYPT)))
    with pytest.raises(TpmIdentityError, match="sensitiveDataOrigin"):
        resident_key_point(software_public(int(RESIDENT & ~TPMA_OBJECT.SENSITIVEDATAORIGIN)))
    assert len(resident_key_point(RESIDENT_LOOKING)) == 65


def test_keys_that_cannot_be_trusted_with_quotes_are_no_quote_keys() -> None:
    check_quote_key(software_public(int(QUOTE_KEY)))
    with pytest.raises(TpmIdentityError, match="not restricted"):
        check_quote_key(RESIDENT_LOOKING)
    with pytest.raises(TpmIdentityError, match="fixedTPM"):
        check_quote_key(software_public(int(QUOTE_KEY & ~TPMA_OBJECT.FIXEDTPM)))
    with pytest.raises(TpmIdentityError, match="decryption"):
        check_quote_key(software_public(int(QUOTE_KEY | TPMA_OBJECT.DECRYPT)))
    with pytest.raises(TpmIdentityError, match="truncated"):
        check_quote_key(b"\x00")


def _self_signed_ca(name: str) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )


def test_wrong_ca_or_wrong_ek_is_refused(swtpm: SimulatedTpm, tmp_path: Path) -> None:
    rot = TpmRootOfTrust.open(tcti=swtpm.tcti)
    ek_cert, ek_public = rot.endorsement_certificate(), rot.endorsement_public()
    identity_public = rot.identity_public()
    rot.close()
    issuer = _ca(swtpm.ek_ca_certificate)
    with pytest.raises(TpmIdentityError, match="trusted TPM CA"):
        check_endorsement(ek_cert, ek_public, [_self_signed_ca("Not the TPM maker")])
    with pytest.raises(TpmIdentityError, match="trusted TPM CA"):
        check_endorsement(ek_cert, ek_public, [])
    # A CA with the issuer's name but another key: the signature check refuses it.
    impostor = _self_signed_ca("x")
    renamed = (
        x509.CertificateBuilder()
        .subject_name(issuer.subject)
        .issuer_name(issuer.subject)
        .public_key(impostor.public_key())  # type: ignore[arg-type]
        .serial_number(2)
        .not_valid_before(impostor.not_valid_before_utc)
        .not_valid_after(impostor.not_valid_after_utc)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
    )
    with pytest.raises(TpmIdentityError, match="trusted TPM CA"):
        check_endorsement(ek_cert, ek_public, [renamed])
    with pytest.raises(TpmIdentityError, match="not a DER"):
        check_endorsement(b"\x30\x03\x02\x01\x00", ek_public, [issuer])
    with pytest.raises(TpmIdentityError, match="EK is not"):
        check_endorsement(ek_cert, identity_public, [issuer])

    other = SimulatedTpm(directory=tmp_path / "other")
    other.start()
    try:
        second = TpmRootOfTrust.open(tcti=other.tcti)
        other_ek = second.endorsement_public()
        second.close()
    finally:
        other.kill()
    with pytest.raises(TpmIdentityError, match="another key"):
        check_endorsement(ek_cert, other_ek, [issuer])


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_garbage_public_areas_are_refused(data: bytes) -> None:
    try:
        point = resident_key_point(data)
    except TpmIdentityError as exc:
        assert exc.reason
    else:  # only a well-formed resident-looking P-256 area gets through
        assert len(point) == 65
    with contextlib.suppress(TpmIdentityError):
        check_quote_key(data)


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=0, max_value=len(RESIDENT_LOOKING) - 1))
def test_truncated_public_areas_are_refused(cut: int) -> None:
    with pytest.raises(TpmIdentityError):
        resident_key_point(RESIDENT_LOOKING[:cut])
    with pytest.raises(TpmIdentityError):
        make_challenge(RESIDENT_LOOKING[:cut], RESIDENT_LOOKING)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=64), st.integers(min_value=0, max_value=len(RESIDENT_LOOKING) - 1))
def test_flipped_bytes_never_escape_as_another_error(noise: bytes, at: int) -> None:
    mutated = bytearray(RESIDENT_LOOKING)
    for offset, value in enumerate(noise):
        mutated[(at + offset) % len(mutated)] ^= value
    with contextlib.suppress(TpmIdentityError):
        resident_key_point(bytes(mutated))


def test_a_coordinate_without_its_leading_zero_byte_is_the_same_point() -> None:
    """tpm2-tss drops a coordinate's leading zero bytes; the point is still P-256's."""
    while True:
        key = ec.generate_private_key(ec.SECP256R1())
        point = key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        if point[1] == 0:
            break
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    area = TPMT_PUBLIC.from_pem(pem, objectAttributes=int(RESIDENT))
    public = bytes(TPM2B_PUBLIC(publicArea=area).marshal())
    assert resident_key_point(public) == point
