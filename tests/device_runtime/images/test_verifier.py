"""The device's image verifier: what it returns, how it streams, and every refusal's reason."""

from __future__ import annotations

import hashlib

import pytest

from device_runtime.core import signed_image as fmt
from device_runtime.core.errors import CryptoError
from device_runtime.core.signed_image import ImageError
from device_runtime.image_signer import public_point
from device_runtime.ports.cpython.crypto import verify_ecdsa_der
from device_runtime.ports.micropython import crypto as micropython_crypto
from tests.device_runtime.images.cases import (
    OTHER_KEY,
    PAYLOAD,
    POINT,
    TLVS_AT,
    bad_images,
    finished,
    image,
    malleated,
    outcome,
    patched,
    reader,
)

BAD = bad_images()


def test_a_signed_image_verifies_and_states_its_measurement() -> None:
    data = image()
    verified = fmt.verify(reader(data), POINT, verify_ecdsa_der)
    assert (verified.version, verified.security_counter) == ("1.2.3", 7)
    assert verified.image_hash == hashlib.sha256(data[:TLVS_AT]).digest()
    assert verified.key_hash == fmt.key_hash(POINT)
    assert (verified.header_size, verified.payload_size, verified.size) == (
        0x200,
        len(PAYLOAD),
        len(data),
    )


def test_both_crypto_ports_verify_the_same_image() -> None:
    data = image()
    ours = fmt.verify(reader(data), POINT, verify_ecdsa_der)
    device = fmt.verify(reader(data), POINT, micropython_crypto.verify_ecdsa_der)
    assert ours.image_hash == device.image_hash


@pytest.mark.parametrize("step", [1, 3, 7, 64, 511])
def test_short_reads_give_the_same_answer(step: int) -> None:
    data = image()
    verified = fmt.verify(reader(data, step), POINT, verify_ecdsa_der, chunk_size=512)
    assert verified.image_hash == hashlib.sha256(data[:TLVS_AT]).digest()


@pytest.mark.parametrize("chunk_size", [512, 4096, 1 << 16])
def test_the_image_is_read_a_chunk_at_a_time_and_never_past_its_end(chunk_size: int) -> None:
    data = image(payload=bytes(300_000)) + b"trailer the verifier must not read"
    asked: list[int] = []
    inner = reader(data)

    def read(n: int) -> memoryview:
        asked.append(n)
        return inner(n)

    verified = fmt.verify(read, POINT, verify_ecdsa_der, chunk_size=chunk_size)
    assert max(asked) <= chunk_size
    assert sum(asked) == verified.size == len(data) - len(b"trailer the verifier must not read")


def test_a_reader_that_returns_more_than_asked_is_refused() -> None:
    data = image()
    with pytest.raises(ImageError, match="the reader returned 64 bytes for 32"):
        fmt.verify(lambda n: data[:64], POINT, verify_ecdsa_der)


def test_a_malformed_expected_key_is_the_callers_error_not_the_images() -> None:
    with pytest.raises(CryptoError):
        fmt.verify(reader(image()), b"\x04" + bytes(10), verify_ecdsa_der)


@pytest.mark.parametrize("name", sorted(BAD))
def test_every_bad_image_is_refused_with_its_reason(name: str) -> None:
    data, words = BAD[name]
    reason = outcome(data)
    assert words in reason, (name, reason)


def test_the_issues_bad_inputs_are_among_the_cases() -> None:
    named = {
        "bad-signature", "wrong-key", "truncated-body", "header-size-lies", "body-size-lies-short",
        "protected-overlaps", "protected-size-lies", "tlv-runs-past-end", "tlv-length-past-end",
        "duplicate-keyhash", "no-counter", "oversized-signature", "body-past-limit",
    }  # fmt: skip
    assert named <= set(BAD)


def test_an_image_over_the_callers_size_limit_is_refused() -> None:
    data = image()
    assert outcome(data, max_size=len(data)) == "ok"
    assert "run past the 2575-byte limit" in outcome(data, max_size=2575)
    assert f"runs past the {len(data) - 1}-byte limit" in outcome(data, max_size=len(data) - 1)


def test_another_key_is_refused_by_its_hash_before_any_signature_check() -> None:
    other = public_point(OTHER_KEY.public_key())
    assert "signed by another key" in outcome(image(), point=other)
    assert outcome(image(key=OTHER_KEY), point=other) == "ok"


def test_the_signature_is_malleable_so_the_file_is_not_the_images_identity() -> None:
    """(r, n - s) verifies as (r, s) does, on both ports: no key needed, the measurement the
    same, the file's bytes and SHA-256 not. The verifier takes either S (requiring the low one
    would refuse half of imgtool's images), so what names an image is its measurement."""
    data = image()
    other = malleated(data)
    for verify_signature in (verify_ecdsa_der, micropython_crypto.verify_ecdsa_der):
        ours, theirs = (fmt.verify(reader(d), POINT, verify_signature) for d in (data, other))
        assert ours.image_hash == theirs.image_hash
    assert hashlib.sha256(data).digest() != hashlib.sha256(other).digest()


def test_a_position_independent_image_verifies() -> None:
    """PIC is the one flag a board can honour: it asks nothing of where the payload runs."""
    pic = finished(patched(image()[:TLVS_AT], 16, "<I", 0x1))
    assert outcome(pic) == "ok"
    assert fmt.inspect(reader(pic)).flags == 0x1


def test_inspect_reads_the_structure_without_a_key() -> None:
    data = image()
    parsed = fmt.inspect(reader(data))
    assert (parsed.version, parsed.security_counter, parsed.size) == ("1.2.3", 7, len(data))
    assert (parsed.header_size, parsed.protected_size, parsed.flags) == (0x200, 12, 0)
    assert [(kind, offset) for kind, (offset, _) in sorted(parsed.tlvs.items())] == [
        (fmt.KEYHASH, 2612),
        (fmt.SHA256, 2576),
        (fmt.ECDSA_SIG, 2648),
        (fmt.SEC_CNT, 2564),
    ]
    assert parsed.value(fmt.SHA256) == parsed.digest
    wrong_key, _ = BAD["wrong-key"]
    assert fmt.inspect(reader(wrong_key)).version == "1.2.3", "inspect needs no key"
