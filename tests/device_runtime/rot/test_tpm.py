"""The root-of-trust contract on a real TPM 2.0 (swtpm), and what only a TPM can show.

Each test gets a freshly manufactured swtpm (EK certificate included) on its own
ports; keys, counters and sealed blobs are checked against the TPM itself, and
the quote against the verifier the attestation server uses.
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from tpm2_pytss import ESAPI  # type: ignore[import-untyped]
from tpm2_pytss.constants import (  # type: ignore[import-untyped]
    ESYS_TR,
    TPM2_ALG,
    TPM2_CC,
    TPM2_RH,
    TPM2_SE,
    TPM2_ST,
    TPMA_NV,
    TPMA_OBJECT,
)
from tpm2_pytss.TSS2_Exception import TSS2_Exception  # type: ignore[import-untyped]
from tpm2_pytss.types import (  # type: ignore[import-untyped]
    TPM2B_DATA,
    TPM2B_NV_PUBLIC,
    TPM2B_PUBLIC,
    TPMS_NV_PUBLIC,
    TPMT_SIG_SCHEME,
    TPMT_SYM_DEF,
    TPMT_SYM_DEF_OBJECT,
    TPMT_TK_HASHCHECK,
)

from attestation_server.tpm_identity import QuoteError, verify_quote
from device_runtime.core.errors import RootOfTrustError
from device_runtime.rot.tpm import (
    COUNTER_BASE,
    EVIDENCE_HANDLE,
    IDENTITY_HANDLE,
    QUOTE_HANDLE,
    TpmRootOfTrust,
)
from device_runtime.simulated_tpm import SimulatedTpm
from tests.components import binary, free_port
from tests.swtpm_fixtures import swtpm

__all__ = ["swtpm"]


@pytest.fixture
def rot(swtpm: SimulatedTpm) -> Iterator[TpmRootOfTrust]:
    opened = TpmRootOfTrust.open(tcti=swtpm.tcti)
    yield opened
    opened.close()


@contextmanager
def raw_tpm(tpm: SimulatedTpm) -> Iterator[Any]:
    """ESAPI straight to the TPM, as an attacker with the device's software would have it."""
    esapi = ESAPI(tpm.tcti)
    try:
        yield esapi
    finally:
        esapi.close()


def _verifies(point: bytes, message: bytes, signature: bytes) -> bool:
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    der = encode_dss_signature(
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    )
    try:
        key.verify(der, message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def test_keys_sign_es256_and_are_distinct(rot: TpmRootOfTrust) -> None:
    assert rot.kind == "tpm"
    identity, evidence = rot.identity_key(), rot.attestation_key()
    assert len(identity.public_key()) == 65 and identity.public_key()[0] == 4
    assert identity.public_key() != evidence.public_key()
    for key in (identity, evidence):
        signature = key.sign(b"evidence payload")
        assert len(signature) == 64
        assert _verifies(key.public_key(), b"evidence payload", signature)
        assert not _verifies(key.public_key(), b"another payload", signature)


def test_keys_are_fixed_to_the_tpm_and_duplicate_is_refused(
    swtpm: SimulatedTpm, rot: TpmRootOfTrust
) -> None:
    identity = rot.identity_key().public_key()
    rot.close()
    with raw_tpm(swtpm) as esapi:
        for handle in (IDENTITY_HANDLE, EVIDENCE_HANDLE, QUOTE_HANDLE):
            key = esapi.tr_from_tpmpublic(handle)
            public, _, _ = esapi.read_public(key)
            attributes = int(public.publicArea.objectAttributes)
            for flag in (
                TPMA_OBJECT.FIXEDTPM,
                TPMA_OBJECT.FIXEDPARENT,
                TPMA_OBJECT.SENSITIVEDATAORIGIN,
            ):
                assert attributes & int(flag)
            # The DUP role needs a policy session; with or without one the TPM refuses.
            with pytest.raises(TSS2_Exception):
                esapi.duplicate(
                    key, ESYS_TR.NULL, TPM2B_DATA(), TPMT_SYM_DEF_OBJECT(algorithm=TPM2_ALG.NULL),
                    session1=ESYS_TR.PASSWORD,
                )  # fmt: skip
            session = esapi.start_auth_session(
                ESYS_TR.NONE, ESYS_TR.NONE, TPM2_SE.POLICY,
                TPMT_SYM_DEF(algorithm=TPM2_ALG.NULL), TPM2_ALG.SHA256,
            )  # fmt: skip
            esapi.policy_command_code(session, TPM2_CC.Duplicate)
            with pytest.raises(TSS2_Exception):
                esapi.duplicate(
                    key, ESYS_TR.NULL, TPM2B_DATA(), TPMT_SYM_DEF_OBJECT(algorithm=TPM2_ALG.NULL),
                    session1=session,
                )  # fmt: skip
            esapi.flush_context(session)
    again = TpmRootOfTrust.open(tcti=swtpm.tcti)
    assert again.identity_key().public_key() == identity
    again.close()


def test_public_areas_are_marshalled_tpm2b_public(rot: TpmRootOfTrust) -> None:
    for area, point in (
        (rot.identity_public(), rot.identity_key().public_key()),
        (rot.attestation_public(), rot.attestation_key().public_key()),
    ):
        public, used = TPM2B_PUBLIC.unmarshal(area)
        assert used == len(area)
        ecc = public.publicArea.unique.ecc
        assert b"\x04" + bytes(ecc.x) + bytes(ecc.y) == point
    quote_key, _ = TPM2B_PUBLIC.unmarshal(rot.quote_public())
    assert int(quote_key.publicArea.objectAttributes) & int(TPMA_OBJECT.RESTRICTED)


def test_csr_verifies_with_cryptography_and_openssl(rot: TpmRootOfTrust, tmp_path: Any) -> None:
    der = rot.csr("device-0042")
    request = x509.load_der_x509_csr(der)
    assert request.is_signature_valid
    assert request.subject.rfc4514_string() == "CN=device-0042"
    point = request.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    assert point == rot.identity_key().public_key()
    path = tmp_path / "device.csr"
    path.write_bytes(der)
    result = subprocess.run(
        [binary("openssl"), "req", "-in", str(path), "-inform", "DER", "-verify", "-noout"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "verify ok" in (result.stdout + result.stderr).lower()


def test_measurements_start_at_zero_and_extend_as_sha256(rot: TpmRootOfTrust) -> None:
    zero = bytes(32)
    assert [rot.measurement(i) for i in range(8)] == [zero] * 8
    digest = hashlib.sha256(b"firmware").digest()
    expected = hashlib.sha256(zero + digest).digest()
    assert rot.extend(3, digest) == expected == rot.measurement(3)
    assert rot.measurement(2) == zero
    for bad in (-1, 8, True):
        with pytest.raises(RootOfTrustError):
            rot.measurement(bad)
    with pytest.raises(RootOfTrustError):
        rot.extend(0, b"short")


def test_counters_only_go_up_across_restart_and_power_cut(swtpm: SimulatedTpm) -> None:
    rot = TpmRootOfTrust.open(tcti=swtpm.tcti)
    assert rot.counter(0) == 0
    first = rot.increment(0)
    assert rot.increment(0) == first + 1 == rot.counter(0)
    assert rot.counter(1) == 0
    identity = rot.identity_key().public_key()
    rot.close()
    seen = first + 1
    for power_cut in (False, True):
        swtpm.restart(power_cut=power_cut)
        rot = TpmRootOfTrust.open(tcti=swtpm.tcti)
        assert rot.counter(0) == seen
        seen = rot.increment(0)
        assert rot.identity_key().public_key() == identity
        rot.close()
    swtpm.restart(power_cut=True)
    rot = TpmRootOfTrust.open(tcti=swtpm.tcti)
    assert rot.counter(0) == seen
    for bad in (-1, 8):
        with pytest.raises(RootOfTrustError):
            rot.increment(bad)
    rot.close()


def test_random_bytes_of_any_size(rot: TpmRootOfTrust) -> None:
    assert rot.random_bytes(0) == b""
    big = rot.random_bytes(1000)
    assert len(big) == 1000 and big != rot.random_bytes(1000)
    with pytest.raises(RootOfTrustError):
        rot.random_bytes(-1)


def test_seal_is_bound_to_every_register(rot: TpmRootOfTrust) -> None:
    blob = rot.seal(b"disk key")
    assert rot.unseal(blob) == b"disk key"
    assert rot.unseal(rot.seal(b"")) == b""
    assert rot.unseal(rot.seal(b"x" * 128)) == b"x" * 128
    with pytest.raises(RootOfTrustError):
        rot.seal(b"x" * 129)
    rot.extend(7, hashlib.sha256(b"other firmware").digest())
    with pytest.raises(RootOfTrustError, match="measurements changed"):
        rot.unseal(blob)
    for bad in (b"", b"garbage", blob[:40], blob[:-1], blob + b"\x00"):
        with pytest.raises(RootOfTrustError):
            rot.unseal(bad)


def test_sealed_blob_survives_a_reboot_with_the_same_measurements(swtpm: SimulatedTpm) -> None:
    rot = TpmRootOfTrust.open(tcti=swtpm.tcti)
    blob = rot.seal(b"kept")
    rot.close()
    swtpm.restart()
    rot = TpmRootOfTrust.open(tcti=swtpm.tcti)
    assert rot.unseal(blob) == b"kept"
    rot.close()


def test_blob_of_another_tpm_is_refused(rot: TpmRootOfTrust, tmp_path: Any) -> None:
    other = SimulatedTpm(directory=tmp_path / "other")
    other.start()
    try:
        foreign = TpmRootOfTrust.open(tcti=other.tcti)
        blob = foreign.seal(b"not yours")
        foreign.close()
    finally:
        other.kill()
    with pytest.raises(RootOfTrustError):
        rot.unseal(blob)


def test_quote_verifies_over_nonce_and_pcrs(rot: TpmRootOfTrust) -> None:
    rot.extend(0, hashlib.sha256(b"bootloader").digest())
    rot.extend(5, hashlib.sha256(b"app").digest())
    nonce = rot.random_bytes(32)
    attest, signature = rot.quote(nonce)
    values = {i: rot.measurement(i) for i in range(8)}
    info = verify_quote(rot.quote_public(), attest, signature, nonce, values)
    assert info.registers == tuple(range(8))
    assert info.safe

    with pytest.raises(QuoteError, match="nonce"):
        verify_quote(rot.quote_public(), attest, signature, b"another nonce", values)
    with pytest.raises(QuoteError, match="digest"):
        verify_quote(rot.quote_public(), attest, signature, nonce, {**values, 5: bytes(32)})
    with pytest.raises(QuoteError, match="registers"):
        verify_quote(rot.quote_public(), attest, signature, nonce, {0: values[0]})
    with pytest.raises(QuoteError, match="signature"):
        verify_quote(rot.quote_public(), attest[:-1] + b"\x00", signature, nonce, values)
    with pytest.raises(QuoteError, match="not restricted"):
        verify_quote(rot.identity_public(), attest, signature, nonce, values)

    partial, partial_signature = rot.quote(b"n2", registers=[0, 5])
    verify_quote(
        rot.quote_public(), partial, partial_signature, b"n2", {0: values[0], 5: values[5]}
    )
    with pytest.raises(RootOfTrustError):
        rot.quote(b"n" * 65)


def test_restricted_key_will_not_sign_a_forged_quote(
    swtpm: SimulatedTpm, rot: TpmRootOfTrust
) -> None:
    """The evidence key signs anything; only the restricted AK's quotes count as quotes."""
    attest, _ = rot.quote(b"nonce")
    forged = rot.attestation_key().sign(attest)
    with pytest.raises(QuoteError):
        verify_quote(rot.attestation_public(), attest, forged, b"nonce", {})


def test_absent_tpm_is_a_root_of_trust_error() -> None:
    with pytest.raises(RootOfTrustError, match="unreachable"):
        TpmRootOfTrust.open(tcti=f"swtpm:host=127.0.0.1,port={free_port()}")
    with pytest.raises(RootOfTrustError):
        TpmRootOfTrust.open(tcti="no-such-tcti-module:whatever")


def test_tpm_gone_mid_use_is_a_root_of_trust_error(
    swtpm: SimulatedTpm, rot: TpmRootOfTrust
) -> None:
    swtpm.kill()
    with pytest.raises(RootOfTrustError):
        rot.identity_key().sign(b"x")
    with pytest.raises(RootOfTrustError):
        rot.increment(0)


def test_a_tpm_in_lockout_still_signs_with_the_deviceid_key(
    swtpm: SimulatedTpm, rot: TpmRootOfTrust
) -> None:
    """Wrong guesses by any local process cannot lock the device out of its identity: the
    keys have an empty authorization and ``noDA``; the TPM's lockout is real meanwhile."""
    rot.close()
    with raw_tpm(swtpm) as esapi:
        esapi.dictionary_attack_parameters(1, 1000, 1000)
        key = esapi.tr_from_tpmpublic(IDENTITY_HANDLE)
        esapi.tr_set_auth(key, b"a wrong guess")
        with pytest.raises(TSS2_Exception):
            esapi.sign(key, b"\x00" * 32, _ecdsa_scheme(), _null_ticket())
        guarded = _da_protected_key(esapi, b"a secret")
        esapi.tr_set_auth(guarded, b"another wrong guess")
        with pytest.raises(TSS2_Exception):
            esapi.sign(guarded, b"\x00" * 32, _ecdsa_scheme(), _null_ticket())
        esapi.tr_set_auth(guarded, b"a secret")
        with pytest.raises(TSS2_Exception, match="lockout"):
            esapi.sign(guarded, b"\x00" * 32, _ecdsa_scheme(), _null_ticket())
    locked = TpmRootOfTrust.open(tcti=swtpm.tcti)
    try:
        assert len(locked.identity_key().sign(b"x")) == 64
        assert locked.increment(0) == 1
    finally:
        locked.close()


def test_lockout_is_a_root_of_trust_error_with_its_reason() -> None:
    from tpm2_pytss.constants import TPM2_RC

    from device_runtime.rot.tpm import _reason

    assert "lockout" in _reason(TSS2_Exception(int(TPM2_RC.LOCKOUT)))


def test_an_evicted_deviceid_comes_back_as_the_same_key(swtpm: SimulatedTpm) -> None:
    first = TpmRootOfTrust.open(tcti=swtpm.tcti)
    point = first.identity_key().public_key()
    first.close()
    with raw_tpm(swtpm) as esapi:
        key = esapi.tr_from_tpmpublic(IDENTITY_HANDLE)
        esapi.evict_control(ESYS_TR.OWNER, key, IDENTITY_HANDLE)
    again = TpmRootOfTrust.open(tcti=swtpm.tcti)
    try:
        assert again.identity_key().public_key() == point
    finally:
        again.close()


def _da_protected_key(esapi: Any, auth: bytes) -> Any:
    """A transient signing key with an authValue and no noDA: wrong guesses count."""
    from tpm2_pytss.types import TPM2B_AUTH, TPM2B_SENSITIVE_CREATE, TPMS_SENSITIVE_CREATE

    template = TPM2B_PUBLIC.parse(
        "ecc256:ecdsa-sha256", objectAttributes=TPMA_OBJECT.USERWITHAUTH
        | TPMA_OBJECT.SIGN_ENCRYPT | TPMA_OBJECT.FIXEDTPM | TPMA_OBJECT.FIXEDPARENT
        | TPMA_OBJECT.SENSITIVEDATAORIGIN,
    )  # fmt: skip
    sensitive = TPM2B_SENSITIVE_CREATE(TPMS_SENSITIVE_CREATE(userAuth=TPM2B_AUTH(auth)))
    handle, _, _, _, _ = esapi.create_primary(sensitive, template, ESYS_TR.OWNER)
    return handle


def _ecdsa_scheme() -> Any:
    scheme = TPMT_SIG_SCHEME(scheme=TPM2_ALG.ECDSA)
    scheme.details.ecdsa.hashAlg = TPM2_ALG.SHA256
    return scheme


def _null_ticket() -> Any:
    return TPMT_TK_HASHCHECK(tag=TPM2_ST.HASHCHECK, hierarchy=TPM2_RH.NULL)


def test_an_ordinary_nv_index_posing_as_a_counter_is_refused(swtpm: SimulatedTpm) -> None:
    """Someone who defines a writable index at a counter's handle first controls no counter."""
    with raw_tpm(swtpm) as esapi:
        public = TPM2B_NV_PUBLIC(
            nvPublic=TPMS_NV_PUBLIC(
                nvIndex=COUNTER_BASE + 2,
                nameAlg=TPM2_ALG.SHA256,
                attributes=TPMA_NV.OWNERWRITE | TPMA_NV.OWNERREAD,
                dataSize=8,
            )
        )
        esapi.nv_define_space(None, public, ESYS_TR.OWNER)
    rot = TpmRootOfTrust.open(tcti=swtpm.tcti)
    for action in (rot.counter, rot.increment):
        with pytest.raises(RootOfTrustError, match="not a counter"):
            action(2)
    assert rot.increment(3) >= 1
    rot.close()
