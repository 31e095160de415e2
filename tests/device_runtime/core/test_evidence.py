"""EAT profile 1 tokens from every root of trust, read back with independent code (CPython).

Software and DICE run on the portable backends, the TPM on a real swtpm; each
DeviceID certificate comes from the fleet's manufacturer CA. The token is
decoded with cbor2, verified with pycose and, on DICE, its Alias certificate
is checked with ``cryptography`` against the DeviceID key
(``tests/device_runtime/evidence_checks.py``). Refused inputs are in
``test_evidence_inputs.py``, which also runs under MicroPython.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import cbor2
import pytest
from cryptography import x509

from device_runtime.core import evidence
from device_runtime.core.errors import InvalidField, RootOfTrustError, TooLarge
from device_runtime.rot.certificates import OID_TCB_INFO
from device_runtime.rot.tpm import TpmRootOfTrust
from device_runtime.simulated_tpm import SimulatedTpm
from fleet_platform.pki import CertificateAuthority
from tests.device_runtime.evidence_checks import (
    DEVICE_ID,
    IMAGE,
    INPUTS,
    check_token,
    deviceid_certificate,
    manufacturer_ca,
)
from tests.device_runtime.rot.backends import PORTABLE_KINDS, Backend
from tests.swtpm_fixtures import swtpm

__all__ = ["swtpm"]

ENVELOPE = 200
"""Bytes of protocol envelope a token travels in, beside it in one message."""
MESSAGE_LIMIT = 4096


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> CertificateAuthority:
    return manufacturer_ca(tmp_path_factory.mktemp("maker") / "ca")


@pytest.fixture(params=PORTABLE_KINDS)
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    made = Backend(request.param)
    yield made
    made.close()


def _fits(token: bytes) -> None:
    assert len(token) <= evidence.MAX_TOKEN
    assert len(token) + ENVELOPE <= MESSAGE_LIMIT


def test_a_portable_backends_token_meets_the_profile(
    backend: Backend, ca: CertificateAuthority
) -> None:
    rot = backend.open("a")
    deviceid = deviceid_certificate(ca, backend.kind, rot.csr(DEVICE_ID))
    token = evidence.token(rot, deviceid_certificate=deviceid, **INPUTS)
    check_token(token, kind=backend.kind, deviceid_der=deviceid)
    _fits(token)


def test_a_dice_alias_certificate_states_the_measured_image(ca: CertificateAuthority) -> None:
    """The verifier holds the image claim against the Alias certificate's FWID."""
    backend = Backend("dice")
    try:
        rot = backend.open("a")
        deviceid = deviceid_certificate(ca, "dice", rot.csr(DEVICE_ID))
        token = evidence.token(rot, deviceid_certificate=deviceid, **INPUTS)
    finally:
        backend.close()
    alias = x509.load_der_x509_certificate(cbor2.loads(token).value[1][33][0])
    tcb = alias.extensions.get_extension_for_oid(x509.ObjectIdentifier(OID_TCB_INFO))
    assert tcb.value.public_bytes().endswith(IMAGE)
    assert alias.subject.rfc4514_string() == "OU=DICE Alias,CN=" + DEVICE_ID


def test_a_tpm_token_meets_the_profile_and_its_quote_matches_it(
    swtpm: SimulatedTpm, ca: CertificateAuthority
) -> None:
    from attestation_server.tpm_identity import verify_quote

    rot = TpmRootOfTrust.open(tcti=swtpm.tcti)
    try:
        evidence.measure_boot(rot, INPUTS["image_digest"], INPUTS["config_digest"])
        deviceid = deviceid_certificate(ca, "tpm", rot.csr(DEVICE_ID))
        token = evidence.token(rot, deviceid_certificate=deviceid, **INPUTS)
        attest, signature = rot.quote(INPUTS["nonce"], registers=(0, 1))
        quote_public = rot.quote_public()
    finally:
        rot.close()
    claims = check_token(token, kind="tpm", deviceid_der=deviceid)
    registers = {}
    for index, (_, content) in enumerate(claims[273]):
        _, digest = cbor2.loads(content)
        registers[index] = hashlib.sha256(bytes(32) + digest).digest()
    verify_quote(quote_public, attest, signature, claims[10], registers)
    assert len(token) + len(attest) + len(signature) + ENVELOPE <= MESSAGE_LIMIT


def test_measure_boot_sets_what_a_verifier_recomputes_once(backend: Backend) -> None:
    rot = backend.open("a")
    image, config = INPUTS["image_digest"], INPUTS["config_digest"]
    evidence.measure_boot(rot, image, config)
    assert rot.measurement(0) == hashlib.sha256(bytes(32) + image).digest()
    assert rot.measurement(1) == hashlib.sha256(bytes(32) + config).digest()
    evidence.measure_boot(rot, image, config)  # the same boot, measured again: unchanged
    assert rot.measurement(0) == hashlib.sha256(bytes(32) + image).digest()
    with pytest.raises(RootOfTrustError, match="register 1 was extended"):
        evidence.measure_boot(rot, image, hashlib.sha256(b"other config").digest())
    with pytest.raises(InvalidField, match="image digest"):
        evidence.measure_boot(backend.open("b"), image[:31], config)
    assert backend.open("b").measurement(1) == bytes(32)  # nothing extended before refusing


def test_a_certificate_over_the_token_limit_is_refused_before_any_signing(
    backend: Backend,
) -> None:
    rot = backend.open("a")
    with pytest.raises(TooLarge, match="certificate alone"):
        evidence.token(rot, deviceid_certificate=bytes(evidence.MAX_TOKEN + 1), **INPUTS)


def test_a_token_over_the_limit_says_how_large() -> None:
    """The software backend chains any certificate it is given, so the token outgrows the limit."""
    backend = Backend("software")
    try:
        rot = backend.open("a")
        with pytest.raises(TooLarge, match=r"token is \d+ bytes, over the 3072 limit"):
            evidence.token(rot, deviceid_certificate=bytes(evidence.MAX_TOKEN - 100), **INPUTS)
    finally:
        backend.close()


def test_the_edges_of_each_range_are_accepted(ca: CertificateAuthority) -> None:
    backend = Backend("software")
    try:
        rot = backend.open("a")
        deviceid = deviceid_certificate(ca, "software", rot.csr(DEVICE_ID))
        edges = {"dbgstat": 4, "bootcount": (1 << 32) - 1, "uptime": (1 << 64) - 1,
                 "security_version": 0, "swname": "x" * 64, "swversion": "v" * 32,
                 "hwmodel": "é" * 64}  # fmt: skip
        inputs = {**INPUTS, **edges}
        token = evidence.token(rot, deviceid_certificate=deviceid, **inputs)
    finally:
        backend.close()
    check_token(token, kind="software", deviceid_der=deviceid, inputs=inputs)
