"""Roots of trust: where a device's keys, measurements and counters live.

Every backend offers the same small interface (its static shape is
``RootOfTrust`` in ``device_runtime/core/port_types.pyi``), so the agent, the
provisioning console and attestation never know which one they hold:

``kind``
    ``"software"``, ``"tpm"`` or ``"dice"`` (``protocol.ROOTS_OF_TRUST``). A
    backend never reports another kind; the server trusts the kind only once
    provisioning or attestation has proven it.
``identity_key()``
    The DeviceID key: created inside the root of trust on first use, never
    leaves it, the same across firmware versions. Its certificate (CN = the
    device id) is what the device presents to the broker.
``attestation_key()``
    A second key: DICE's Alias key (derived from the firmware measurement, so
    it changes when the firmware does), the TPM's second unrestricted signing
    key, a second file key for the software backend.
    A key is an object with ``public_key() -> bytes`` (SEC1 uncompressed point,
    65 bytes) and ``sign(message) -> bytes`` (ES256: SHA-256 then ECDSA P-256,
    raw r || s, 64 bytes).
``evidence_key()`` / ``certificate_chain(deviceid_certificate, device_id) -> list[bytes]``
    The key that signs evidence (``device_runtime.core.evidence``, EAT profile
    1) and the DER certificates naming it, leaf first, the given DeviceID
    certificate last, so the evidence builder never asks which kind it holds.
    DICE: the Alias key and ``[Alias certificate, DeviceID certificate]``, the
    Alias certificate issued on the device by the DeviceID key and stating the
    firmware measurement. TPM and software: the DeviceID key and
    ``[DeviceID certificate]`` (the TPM's DeviceID key is the one whose
    residency the factory proved). A TPM's evidence also carries
    ``quote(nonce, registers=(0, 1))``.
``csr(common_name) -> bytes``
    A DER PKCS#10 request for the identity key, signed by it (proof of
    possession), naming *common_name*; a factory CA certifies the key from it
    without ever seeing the key.
``extend(index, digest) -> bytes`` / ``measurement(index) -> bytes``
    Measurement registers 0..7 (``MEASUREMENT_REGISTERS``), each 32 bytes,
    starting at zero; extending sets ``SHA-256(old || digest)`` and returns it.
    On a TPM they are the SHA-256 bank's PCRs 8..15; elsewhere they restart
    at zero with every boot.
``counter(index) -> int`` / ``increment(index) -> int``
    Monotonic counters 0..7 (``COUNTERS``): they only ever go up, across
    restarts and power cuts; ``increment`` returns the new value. Anti-rollback
    stands on them.
``random_bytes(n) -> bytes``
    From the root of trust's own generator where it has one.
``seal(secret) -> bytes`` / ``unseal(blob) -> bytes``
    A small secret (at most ``MAX_SEALED`` bytes) bound to the current values of
    every measurement register: ``unseal`` returns it only while they are the
    same, and raises ``RootOfTrustError`` otherwise (or for a blob that is not
    one of this root of trust's).

Failures are ``RootOfTrustError`` (absent, locked out, refusing, a bad blob),
``CryptoError`` for bad keys or signatures and ``StorageError`` for the durable
state of file-backed backends, each with a reason. One conformance suite
(``tests/device_runtime/rot/conformance*.py``) checks every backend: the
portable ones on CPython and under MicroPython at 64 KiB, the TPM on a real
swtpm per device (``test_conformance_tpm.py``), beside what only a TPM shows
(``test_tpm.py``).
"""

MEASUREMENT_REGISTERS = 8
COUNTERS = 8
MAX_SEALED = 128
