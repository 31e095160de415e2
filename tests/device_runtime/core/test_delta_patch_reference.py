"""The device's delta applier and heatshrink decoder against detools and heatshrink2.

CPython only: hypothesis makes old and new images, detools makes the patch and
applies it with its own ``apply_patch``, and the device's applier must write exactly
the same bytes; a patch mutated in any way must end in that image or in DeltaError,
never in another exception or in different bytes from what detools makes of it.
"""

from __future__ import annotations

import io

import detools  # type: ignore[import-untyped]
import heatshrink2  # type: ignore[import-untyped]
from hypothesis import given, settings, target
from hypothesis import strategies as st

from device_runtime.core.delta_patch import DeltaError
from device_runtime.core.heatshrink import MAX_READ, MAX_WINDOW_SZ2, HeatshrinkReader
from tests.device_runtime.core.delta_cases import NEW, OLD, PATCH, applied
from tests.update_service.release_fixtures import EMPTY_RUN_IMAGES
from update_service.deltas import HEATSHRINK_LOOKAHEAD_SZ2, HEATSHRINK_WINDOW_SZ2, build_delta

EXAMPLES = settings(max_examples=200, deadline=None)


@st.composite
def image_pairs(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """An old image and a new one made from it by a few edits, as releases are."""
    alphabet = draw(st.sampled_from([b"\x00\x01\xff", b"abcdefgh", bytes(range(256))]))
    old = bytes(draw(st.lists(st.sampled_from(alphabet), max_size=4000)))
    new = bytearray(old)
    for _ in range(draw(st.integers(0, 6))):
        at = draw(st.integers(0, len(new)))
        cut = draw(st.integers(0, 40))
        new[at : at + cut] = draw(st.binary(max_size=40))
    if draw(st.booleans()):
        new = bytearray(draw(st.binary(max_size=200))) + new
    return old, bytes(new)


PARAMETERS = st.integers(4, MAX_WINDOW_SZ2).flatmap(
    lambda window: st.tuples(st.just(window), st.integers(3, window - 1))
)


def detools_patch(old: bytes, new: bytes, window_sz2: int, lookahead_sz2: int) -> bytes:
    made = io.BytesIO()
    detools.create_patch(
        io.BytesIO(old), io.BytesIO(new), made, compression="heatshrink",
        heatshrink_window_sz2=window_sz2, heatshrink_lookahead_sz2=lookahead_sz2,
    )  # fmt: skip
    return made.getvalue()


def detools_applied(old: bytes, patch: bytes) -> bytes:
    made = io.BytesIO()
    detools.apply_patch(io.BytesIO(old), io.BytesIO(patch), made)
    return made.getvalue()


def test_the_embedded_patch_is_what_the_builder_makes() -> None:
    assert build_delta(OLD, NEW) == PATCH
    assert detools_applied(OLD, PATCH) == NEW


def test_the_builder_stays_within_the_device_window() -> None:
    assert HEATSHRINK_WINDOW_SZ2 <= MAX_WINDOW_SZ2
    assert HEATSHRINK_LOOKAHEAD_SZ2 < HEATSHRINK_WINDOW_SZ2


@EXAMPLES
@given(image_pairs(), PARAMETERS, st.integers(1, 300))
def test_the_applier_writes_what_detools_writes(
    pair: tuple[bytes, bytes], parameters: tuple[int, int], read_size: int
) -> None:
    old, new = pair
    patch = detools_patch(old, new, *parameters)
    assert detools_applied(old, patch) == new
    assert applied(old, patch, read_size=read_size) == new


def longest_empty_run(patch: bytes) -> int:
    """The most entries in a row with neither diff nor extra bytes in a detools patch."""
    to_size, at = _size_at(patch, 1)
    window_sz2, lookahead_sz2 = (patch[at] >> 4) + 4, (patch[at] & 15) + 3
    body = heatshrink2.decompress(patch[at + 1 :], window_sz2=window_sz2,
                                  lookahead_sz2=lookahead_sz2)  # fmt: skip
    _, at = _size_at(body, 0)
    made = run = longest = 0
    while made < to_size:
        diff, at = _size_at(body, at)
        extra, at = _size_at(body, at + diff)
        _, at = _size_at(body, at + extra)
        made += diff + extra
        run = run + 1 if diff == extra == 0 else 0
        longest = max(longest, run)
    return longest


def _size_at(data: bytes, at: int) -> tuple[int, int]:
    """The detools size at *at* and where the next field starts."""
    first = byte = data[at]
    value, shift, at = byte & 0x3F, 6, at + 1
    while byte & 0x80:
        byte = data[at]
        value, shift, at = value | (byte & 0x7F) << shift, shift + 7, at + 1
    return (-value if first & 0x40 else value), at


def test_a_genuine_patch_with_empty_entries_in_a_row_applies() -> None:
    old, new = EMPTY_RUN_IMAGES
    patch = build_delta(old, new)
    assert longest_empty_run(patch) >= 2
    assert applied(old, patch) == detools_applied(old, patch) == new


@st.composite
def periodic_pairs(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """A repeating old image with a few other bytes after it, and the new one the same
    repetition shifted, a few bytes off by one: bsdiff then moves the old cursor back by
    a period and again before its next match, making empty entries in a row (the family
    the fuzzer found them in; about one example in fifteen has a run)."""
    period = draw(st.binary(min_size=2, max_size=8))
    body = period * draw(st.integers(3, 10)) + period[: draw(st.integers(0, len(period) - 1))]
    old = body + draw(st.binary(min_size=1, max_size=12))
    new = bytearray(body[draw(st.integers(1, len(period))) :])
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(new) - 1))
        new[at] = (new[at] + draw(st.sampled_from([1, 255]))) & 0xFF
    return old, bytes(new)


@settings(max_examples=300, deadline=None)
@given(periodic_pairs(), PARAMETERS)
def test_the_applier_writes_what_detools_writes_with_empty_entries_in_a_row(
    pair: tuple[bytes, bytes], parameters: tuple[int, int]
) -> None:
    old, new = pair
    patch = detools_patch(old, new, *parameters)
    target(longest_empty_run(patch))
    assert applied(old, patch) == detools_applied(old, patch) == new


@EXAMPLES
@given(image_pairs())
def test_every_patch_the_builder_makes_applies(pair: tuple[bytes, bytes]) -> None:
    old, new = pair
    assert applied(old, build_delta(old, new)) == new


@st.composite
def mutated(draw: st.DrawFn) -> tuple[bytes, bytes]:
    old, new = draw(image_pairs())
    patch = bytearray(detools_patch(old, new, *draw(PARAMETERS)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "byte"]))
        at = draw(st.integers(0, len(patch)))
        if kind == "flip" and at < len(patch):
            patch[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "byte" and at < len(patch):
            patch[at] = draw(st.integers(0, 255))
        elif kind == "cut":
            del patch[at:]
        else:
            patch[at:at] = draw(st.binary(min_size=1, max_size=8))
    return old, bytes(patch)


@settings(max_examples=500, deadline=None)
@given(mutated())
def test_a_mutated_patch_is_refused_or_agrees_with_detools(case: tuple[bytes, bytes]) -> None:
    old, patch = case
    try:
        ours = applied(old, patch, max_size=1 << 16)
    except DeltaError:
        return
    try:
        theirs = detools_applied(old, patch)
    except Exception:  # detools refuses what its own applier cannot make sense of
        raise AssertionError("accepted a patch detools refuses") from None
    assert ours == theirs


def decoded(stream: bytes, window_sz2: int, lookahead_sz2: int, sizes: list[int]) -> bytes:
    source = io.BytesIO(stream)
    budget = iter(sizes * (len(stream) + 1))

    def read(n: int) -> bytes:
        return source.read(min(n, next(budget, n)))

    reader = HeatshrinkReader(read, window_sz2, lookahead_sz2)
    out = []
    for asked in iter(lambda: next(budget, MAX_READ), None):
        got = reader.read(min(asked, MAX_READ))
        if not got and reader.ended:
            break
        out.append(got)
    return b"".join(out)


@EXAMPLES
@given(st.binary(max_size=3000), PARAMETERS, st.lists(st.integers(1, 700), min_size=1, max_size=5))
def test_any_bytes_decode_as_heatshrink2_decodes_them(
    stream: bytes, parameters: tuple[int, int], sizes: list[int]
) -> None:
    assert decoded(stream, *parameters, sizes) == heatshrink2.decompress(
        stream, window_sz2=parameters[0], lookahead_sz2=parameters[1]
    )


@EXAMPLES
@given(st.binary(max_size=2000), st.integers(0, 3000), PARAMETERS)
def test_what_heatshrink2_compresses_decodes_back(
    data: bytes, zeros: int, parameters: tuple[int, int]
) -> None:
    plain = data + bytes(zeros) + data
    stream = heatshrink2.compress(plain, window_sz2=parameters[0], lookahead_sz2=parameters[1])
    assert decoded(stream, *parameters, [MAX_READ]) == plain
