"""The contract's key checks (see ``conformance.py``): kind, keys, signatures, the firmware's
effect, the CSR. Apart from the state checks so each fits a 64 KiB MicroPython heap."""

import gc

from device_runtime.core import p256, p256_encoding
from device_runtime.core.errors import CryptoError
from tests.device_runtime.refusal import refused

PORTABLE_HELPER = True


def check_kind(backend):
    assert backend.open("a").kind == backend.kind


def check_keys_stable_across_reopen(backend):
    rot = backend.open("a")
    identity = rot.identity_key().public_key()
    attestation = rot.attestation_key().public_key()
    for point in (identity, attestation):
        assert len(point) == 65 and point[0] == 4
        p256_encoding.parse_public_point(point)
    assert identity != attestation
    again = backend.open("a")
    assert again.identity_key().public_key() == identity
    assert again.attestation_key().public_key() == attestation
    other = backend.open("b")
    assert other.identity_key().public_key() != identity
    assert other.attestation_key().public_key() != attestation


def check_keys_sign_es256(backend):
    rot = backend.open("a")
    for key in (rot.identity_key(), rot.attestation_key()):
        public = key.public_key()
        signature = key.sign(b"evidence")
        assert len(signature) == 64
        gc.collect()  # under MicroPython the verifier's tables need the room
        p256.verify(public, b"evidence", signature)
        refused(p256.verify, public, b"evidencE", signature, errors=(CryptoError,))
        gc.collect()


def check_firmware_measurement(backend):
    """DeviceID never follows the firmware; a firmware-bound attestation key always does."""
    first = backend.open("a", "1.0.0")
    second = backend.open("a", "2.0.0")
    assert first.identity_key().public_key() == second.identity_key().public_key()
    alias_1 = first.attestation_key().public_key()
    alias_2 = second.attestation_key().public_key()
    if backend.firmware_bound:
        assert alias_1 != alias_2
    else:
        assert alias_1 == alias_2
    assert backend.open("a", "1.0.0").attestation_key().public_key() == alias_1


def check_evidence_key_signs_es256(backend):
    """Evidence is signed by the Alias key on DICE, by the DeviceID key everywhere else."""
    rot = backend.open("a")
    key = rot.evidence_key()
    expected = rot.attestation_key() if backend.kind == "dice" else rot.identity_key()
    public = key.public_key()
    assert public == expected.public_key()
    signature = key.sign(b"token")
    gc.collect()
    p256.verify(public, b"token", signature)
    refused(p256.verify, public, b"tokeN", signature, errors=(CryptoError,))
    gc.collect()


def check_certificate_chain(backend):
    # In a module of its own: the DICE Alias certificate's DER code does not fit in 64 KiB
    # beside the rest.
    from tests.device_runtime.rot.conformance_chain import check_certificate_chain_der

    check_certificate_chain_der(backend)


def check_csr(backend):
    # In a module of its own: the DER code it needs does not fit in 64 KiB beside the rest.
    from tests.device_runtime.rot.conformance_csr import check_csr_der

    check_csr_der(backend)
