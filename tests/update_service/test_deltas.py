"""The release service's delta builder and the rule for publishing a delta."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from device_runtime.core.delta_patch import DeltaError
from device_runtime.core.signed_image import ImageError, inspect, verify
from device_runtime.image_signer import public_point, sign_image
from device_runtime.ports.cpython.crypto import verify_ecdsa_der
from tests.device_runtime.images.cases import malleated, reader
from tests.update_service.firmware_steps import bytecode_firmware, source_firmware
from update_service.deltas import MIN_SAVING, apply_delta, build_delta, worth_publishing

BODY = bytes(range(256)) * 64


def image_hash(data: bytes) -> bytes:
    return inspect(reader(data)).digest


@pytest.mark.parametrize("firmware", [source_firmware, bytecode_firmware])
def test_a_minor_step_is_a_delta_far_smaller_than_the_image(
    firmware: Callable[..., bytes], tmp_path: Path
) -> None:
    old = firmware(tmp_path / "old", stepped=False)
    new = firmware(tmp_path / "new", stepped=True)
    delta = build_delta(old, new)
    assert apply_delta(old, delta, max_size=len(new)) == new
    assert len(delta) <= len(new) // 5, "the issue's target: at least 80% smaller"
    assert worth_publishing(delta, len(new))


def test_unrelated_images_make_a_delta_not_worth_publishing() -> None:
    old = b"".join(hashlib.sha256(b"old %d" % i).digest() for i in range(2048))
    new = b"".join(hashlib.sha256(b"new %d" % i).digest() for i in range(2048))
    delta = build_delta(old, new)
    assert apply_delta(old, delta, max_size=len(new)) == new
    assert not worth_publishing(delta, len(new))


def test_the_publishing_rule() -> None:
    assert worth_publishing(bytes(1000), 100_000)
    assert worth_publishing(bytes(50_000), 100_000)
    assert not worth_publishing(bytes(50_001), 100_000)
    assert not worth_publishing(bytes(100), 100 + MIN_SAVING - 1)
    assert worth_publishing(bytes(100), 2 * MIN_SAVING)


def test_a_delta_applied_to_another_encoding_of_its_base_makes_no_image() -> None:
    """Deltas are looked up by the measurement a device runs but applied to its bytes. A slot
    holding the base with its signature malleated has the base's measurement and other bytes:
    what the delta makes of it is not the new image and the verifier refuses it, so such a
    device must take the full image (docs/images.md)."""
    key = ec.derive_private_key(0xDE17A, ec.SECP256R1())
    old, new = (sign_image(BODY + version.encode(), key=key, version=version,
                           security_counter=counter)
                for version, counter in (("1.0.0", 1), ("1.1.0", 2)))  # fmt: skip
    delta = build_delta(old, new)
    other = malleated(old)
    point = public_point(key.public_key())
    assert verify(reader(other), point, verify_ecdsa_der).image_hash == image_hash(old)
    made = apply_delta(other, delta, max_size=len(new))
    assert made != new
    with pytest.raises(ImageError):
        verify(reader(made), point, verify_ecdsa_der)


def test_applying_a_delta_to_the_wrong_size_is_refused() -> None:
    old = b"release 1.0.0 " * 500
    new = old.replace(b"1.0.0", b"1.0.1")
    delta = build_delta(old, new)
    with pytest.raises(DeltaError, match="more than the 100 allowed"):
        apply_delta(old, delta, max_size=100)
