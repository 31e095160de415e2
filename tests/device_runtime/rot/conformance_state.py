"""The contract's state checks (see ``conformance.py``): measurement registers, counters,
sealing, random bytes. Apart from the key checks so each fits a 64 KiB MicroPython heap."""

import hashlib

from device_runtime.core.errors import CryptoError, RootOfTrustError, StorageError
from device_runtime.rot import COUNTERS, MAX_SEALED, MEASUREMENT_REGISTERS
from device_runtime.rot.counters import STORE_KEY
from tests.device_runtime.refusal import refused

PORTABLE_HELPER = True

BAD_INDEXES = (-1, 8, True, "0", None, 1.0)
BAD_DIGESTS = (b"", bytes(31), bytes(33), "x" * 32, None)


def check_measurements(backend):
    rot = backend.open("a")
    for index in range(MEASUREMENT_REGISTERS):
        assert rot.measurement(index) == bytes(32)
    digest = hashlib.sha256(b"bootloader").digest()
    expected = hashlib.sha256(bytes(32) + digest).digest()
    assert rot.extend(3, digest) == expected
    assert rot.measurement(3) == expected
    expected = hashlib.sha256(expected + digest).digest()
    assert rot.extend(3, digest) == expected
    assert rot.measurement(2) == bytes(32) and rot.measurement(4) == bytes(32)
    for index in BAD_INDEXES:
        refused(rot.extend, index, digest)
        refused(rot.measurement, index)
    for bad in BAD_DIGESTS:
        refused(rot.extend, 0, bad)
    assert rot.measurement(0) == bytes(32)


def check_measurements_restart_at_boot(backend):
    rot = backend.open("a")
    rot.extend(0, bytes(32))
    assert backend.open("a").measurement(0) == bytes(32)


def check_counters(backend):
    rot = backend.open("a")
    assert [rot.counter(i) for i in range(COUNTERS)] == [0] * COUNTERS
    assert rot.increment(5) == 1
    assert rot.increment(5) == 2
    assert rot.increment(0) == 1
    assert rot.counter(5) == 2 and rot.counter(4) == 0
    again = backend.open("a")
    assert again.counter(5) == 2 and again.counter(0) == 1
    assert again.increment(5) == 3
    assert backend.open("b").counter(5) == 0
    for index in BAD_INDEXES:
        refused(rot.counter, index)
        refused(rot.increment, index)
    assert backend.open("a").counter(5) == 3


def check_counters_refused_when_damaged(backend):
    backend.open("a").increment(1)
    backend.open("b").increment(1)
    good = backend.store("a").read(STORE_KEY)
    foreign = backend.store("b").read(STORE_KEY)
    damaged = (
        good[:-1],
        b"",
        good[:10],
        bytes(len(good)),
        good[:12] + bytes((good[12] ^ 1,)) + good[13:],
        foreign,
        b"XXXX" + good[4:],
    )
    for record in damaged:
        backend.store("a").write(STORE_KEY, record)
        rot = backend.open("a")
        reason = refused(rot.counter, 1, errors=(RootOfTrustError, StorageError))
        assert "damaged" in reason, reason
        refused(rot.increment, 1, errors=(RootOfTrustError, StorageError))
    backend.store("a").write(STORE_KEY, good)
    assert backend.open("a").counter(1) == 1


def check_sealing(backend):
    rot = backend.open("a")
    for secret in (b"", b"k", bytes(range(MAX_SEALED))):
        blob = rot.seal(secret)
        assert rot.unseal(blob) == secret
    refused(rot.seal, bytes(MAX_SEALED + 1))
    refused(rot.seal, "text")
    blob = rot.seal(b"wifi password")
    assert rot.seal(b"wifi password") != blob, "each seal uses a fresh nonce"
    rot = backend.open("a")  # a reboot: the same registers, so the blob opens
    assert rot.unseal(blob) == b"wifi password"
    refused(backend.open("b").unseal, blob)
    for bad in (blob[:-1], blob[:16], b"", blob + b"\x00", bytes(len(blob)), None, "blob"):
        refused(rot.unseal, bad)
    for position in (0, 1, 20, len(blob) - 1):
        tampered = blob[:position] + bytes((blob[position] ^ 0x40,)) + blob[position + 1 :]
        refused(rot.unseal, tampered)
    rot.extend(7, hashlib.sha256(b"other code").digest())
    reason = refused(rot.unseal, blob)
    assert "measurements" in reason, reason


def check_sealing_bound_to_firmware(backend):
    if backend.firmware_bound:
        blob = backend.open("a", "1.0.0").seal(b"secret")
        refused(backend.open("a", "2.0.0").unseal, blob)
        assert backend.open("a", "1.0.0").unseal(blob) == b"secret"


def check_random_bytes(backend):
    rot = backend.open("a")
    for n in (0, 1, 32, 1000):
        assert len(rot.random_bytes(n)) == n
    assert rot.random_bytes(32) != rot.random_bytes(32)
    for bad in (-1, 1 << 17, True, "8", None):
        refused(rot.random_bytes, bad, errors=(RootOfTrustError, CryptoError))
