"""The delta applier on patches detools made and on hostile ones, on CPython and MicroPython."""

import gc
import io

from device_runtime.core.delta_patch import CHUNK, DeltaError, apply_patch
from tests.device_runtime.core.delta_cases import (
    NEW,
    OLD,
    PATCH,
    applied,
    entries,
    literals,
    patch,
    refused,
    size,
)

PORTABLE = True


def test_a_detools_patch_rebuilds_the_new_image():
    assert applied(OLD, PATCH) == NEW


def test_a_source_that_hands_out_one_byte_at_a_time_gives_the_same_image():
    assert applied(OLD, PATCH, read_size=1) == NEW


def test_diff_bytes_add_to_the_old_image_modulo_256_and_extras_are_copied():
    old = b"\x00\x10\xff\xfe" + b"tail"
    body = entries((b"\x01\x02\x02\x00", b"NEW", 0), (b"\x00\x00", b"", 0))
    assert applied(old, patch(9, body)) == b"\x01\x12\x01\xfeNEWta"


def test_an_adjustment_moves_the_old_cursor_either_way():
    old = b"0123456789"
    body = entries((bytes(2), b"", 5), (bytes(2), b"-", -9), (bytes(3), b"", 0))
    assert applied(old, patch(8, body)) == b"0178-012"


def test_entries_longer_than_a_chunk_are_written_in_chunks():
    old = bytes(range(256)) * 5
    sizes = []
    source = io.BytesIO(patch(len(old), entries((bytes(len(old)), b"", 0))))
    gc.collect()
    made = apply_patch(source.read, lambda offset, n: old[offset : offset + n], len(old),
                       lambda chunk: sizes.append(len(chunk)), len(old))  # fmt: skip
    assert made == len(old) and sizes == [CHUNK, len(old) - CHUNK]


def test_an_empty_new_image_is_the_header_alone():
    assert applied(OLD, bytes([4]) + size(0)) == b""
    assert "after the end" in refused(OLD, bytes([4]) + size(0) + b"\x00")


def test_every_cut_of_a_real_patch_is_refused():
    for end in range(len(PATCH)):
        reason = refused(OLD, PATCH[:end])
        assert "ends" in reason, (end, reason)


def test_bytes_past_the_end_are_refused():
    assert "after" in refused(OLD, PATCH + b"\xff\xff")


def test_the_header_must_be_a_sequential_heatshrink_patch():
    assert refused(OLD, b"") == "the patch ends at byte 0, in the patch header"
    assert "patch type 1 is not sequential" in refused(OLD, b"\x14" + PATCH[1:])
    assert "patch type 2 is not sequential" in refused(OLD, b"\x24" + PATCH[1:])
    assert "compression 1 is not heatshrink" in refused(OLD, b"\x01" + PATCH[1:])
    assert "compression 0 is not heatshrink" in refused(OLD, b"\x00" + PATCH[1:])


def test_sizes_are_bounded():
    assert "more than the 100 allowed" in refused(OLD, PATCH, max_size=100)
    assert "ends at byte 2" in refused(OLD, b"\x04\x80")
    assert "longer than" in refused(OLD, b"\x04" + b"\xff" * 8)
    assert "new image's size is negative" in refused(OLD, b"\x04\x41" + literals(b""))


def test_heatshrink_parameters_beyond_the_device_are_refused():
    header = b"\x04" + size(4)
    assert "window of 2**13" in refused(OLD, header + b"\x90" + b"\x00" * 4)
    assert "lookahead of 2**8" in refused(OLD, header + b"\x45" + b"\x00" * 4)
    assert "ends at byte 2, in the heatshrink parameters" in refused(OLD, header)


def test_data_format_patches_are_refused():
    assert "data-format" in refused(OLD, patch(1, entries((b"", b"x", 0), data_format=3)))


def test_entries_that_overrun_the_image_are_refused():
    assert "4 bytes of diff data run past the image's 3" in refused(
        OLD, patch(3, entries((bytes(4), b"", 0)))
    )
    assert "extra data run past" in refused(OLD, patch(3, entries((bytes(2), b"xy", 0))))
    assert "diff size is negative" in refused(OLD, patch(3, size(0) + size(-2)))
    assert "extra size is negative" in refused(OLD, patch(3, size(0) + size(0) + size(-1)))


def test_reads_outside_the_old_image_are_refused():
    old = b"abcdef"
    assert "7 bytes from old offset 0 are outside the old image of 6" in refused(
        old, patch(7, entries((bytes(7), b"", 0)))
    )
    assert "from old offset 5" in refused(old, patch(4, entries((bytes(2), b"", 3),
                                                                 (bytes(2), b"", 0))))  # fmt: skip
    assert "cursor moves to -1" in refused(old, patch(4, entries((bytes(2), b"", -3))))


def test_empty_entries_in_a_row_apply_and_a_run_past_the_image_is_refused():
    # detools makes them (bsdiff moving the old cursor twice before the next match).
    two_empty = entries((b"", b"", 2), (b"", b"", -1), (b"\x01", b"b", 0))
    assert applied(b"xyz", patch(2, two_empty)) == b"zb"
    three = entries((b"", b"", 0), (b"", b"", 0), (b"", b"ab", 0))
    assert applied(b"xyz", patch(2, three)) == b"ab"
    four = entries((b"", b"", 0), (b"", b"", 0), (b"", b"", 0), (b"", b"ab", 0))
    assert "more than 3 entries for a 2-byte image" in refused(b"xyz", patch(2, four))


def test_decoded_bytes_after_the_image_are_refused():
    assert "data after the 2 bytes" in refused(OLD, patch(2, entries((b"", b"ab", 0)) + b"\x00"))


def test_a_short_old_image_read_is_refused():
    def short(offset, n):
        return b"ab"

    assert "the old image gave 2 bytes at 0, not 4" in refused(
        b"abcdef", patch(4, entries((bytes(4), b"", 0))), read_at=short
    )


def test_a_source_that_gives_more_than_asked_is_refused():
    body = patch(2, entries((b"", b"ab", 0)))
    given = [False]

    def greedy(n):
        if given[0]:
            return b""
        given[0] = True
        return body

    try:
        apply_patch(greedy, lambda offset, n: b"", 0, lambda chunk: None, 10)
    except DeltaError as exc:
        assert "gave" in exc.reason and exc.code == "bad-delta"
    else:
        raise AssertionError("accepted")
