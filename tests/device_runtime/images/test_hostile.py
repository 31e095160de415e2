"""Hypothesis over the image parser: whatever the bytes, the answer is a verdict or an ImageError.

A changed byte anywhere in what the verifier reads must be refused: every byte
before the TLV area is hashed, and the TLV area's values are compared with what
the verifier computes or verified as a signature. Random changes, that is: a
signature's encoding is malleable, so one deliberate change of the ECDSA_SIG,
(r, s) to (r, n - s), verifies (``test_verifier.py`` shows it), and the
measurement is the image's identity, not the file's bytes.
"""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from device_runtime.core import signed_image as fmt
from device_runtime.core.signed_image import ImageError
from device_runtime.ports.micropython import crypto as micropython_crypto
from tests.device_runtime.images.cases import POINT, image, outcome, reader

SETTINGS = settings(max_examples=300, deadline=None)
GOOD = image(payload=bytes(range(200)))


def _inspected(data: bytes, step: int | None = None) -> str:
    try:
        fmt.inspect(reader(data, step))
    except ImageError as exc:
        assert exc.reason
        return exc.reason
    return "ok"


@SETTINGS
@given(st.binary(max_size=1200))
def test_random_bytes_are_refused_with_an_image_error(data: bytes) -> None:
    assert outcome(data) != "ok"
    _inspected(data)


@SETTINGS
@given(st.lists(st.tuples(st.integers(0, len(GOOD) - 1), st.integers(1, 255)), min_size=1,
                max_size=4, unique_by=lambda change: change[0]))  # fmt: skip
def test_any_changed_byte_is_refused(changes: list[tuple[int, int]]) -> None:
    changed = bytearray(GOOD)
    for offset, flip in changes:
        changed[offset] ^= flip
    assert outcome(bytes(changed)) != "ok"


@SETTINGS
@given(st.integers(0, len(GOOD) - 1), st.binary(min_size=1, max_size=80), st.booleans())
def test_inserted_removed_or_cut_bytes_are_refused(offset: int, extra: bytes, cut: bool) -> None:
    assert outcome(GOOD[:offset]) != "ok"
    inserted = GOOD[:offset] + extra + GOOD[offset:]
    # Bytes after the TLV area are not the image's (slot padding, the trailer): an insertion
    # that leaves the whole image in front of them, such as one equal to the bytes it goes
    # before at the end, is the image with something after it, which verifies by design.
    if not inserted.startswith(GOOD):
        assert outcome(inserted) != "ok"
    assert outcome(GOOD[:offset] + GOOD[offset + len(extra) :]) != "ok"
    if cut:
        _inspected(GOOD[:offset], step=1)


tlv_kinds = st.sampled_from([fmt.KEYHASH, fmt.SHA256, fmt.ECDSA_SIG, fmt.SEC_CNT, 0x02, 0xFFFF])
entries = st.lists(st.tuples(tlv_kinds, st.integers(0, 0xFFFF), st.binary(max_size=80)), max_size=5)


def _area(magic: int, found: list[tuple[int, int, bytes]], total_delta: int) -> bytes:
    body = b"".join(struct.pack("<HH", kind, length) + value for kind, length, value in found)
    return struct.pack("<HH", magic, max(0, min(0xFFFF, 4 + len(body) + total_delta))) + body


@SETTINGS
@given(
    st.integers(0, 80), st.integers(0, 64), st.integers(0, 40), st.integers(-8, 8),
    st.sampled_from([0, 0x1, 0x4, 0x20, 0x200, 0x80000000]), entries, entries,
    st.integers(-6, 6), st.integers(-6, 6),
)  # fmt: skip
def test_structured_garbage_is_refused_with_an_image_error(
    header_size: int,
    body: int,
    protected_size: int,
    body_delta: int,
    flags: int,
    protected: list[tuple[int, int, bytes]],
    unprotected: list[tuple[int, int, bytes]],
    protected_delta: int,
    unprotected_delta: int,
) -> None:
    header = struct.pack(fmt.HEADER_FORMAT, fmt.IMAGE_MAGIC, 0, header_size, protected_size,
                         max(0, body + body_delta), flags, 1, 0, 0, 0, 0)  # fmt: skip
    data = header + b"\xff" * max(0, header_size - 32) + bytes(body)
    if protected:
        data += _area(fmt.PROTECTED_INFO_MAGIC, protected, protected_delta)
    data += _area(fmt.TLV_INFO_MAGIC, unprotected, unprotected_delta)
    assert outcome(data) != "ok"
    _inspected(data)


@settings(max_examples=60, deadline=None)
@given(st.integers(len(GOOD) - 80, len(GOOD) - 1), st.integers(1, 255))
def test_the_micropython_port_refuses_changed_signatures_too(offset: int, flip: int) -> None:
    changed = bytearray(GOOD)
    changed[offset] ^= flip
    try:
        fmt.verify(reader(bytes(changed)), POINT, micropython_crypto.verify_ecdsa_der)
    except ImageError:
        return
    raise AssertionError("a changed image verified")
