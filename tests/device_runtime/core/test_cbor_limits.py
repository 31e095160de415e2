"""The CBOR codec's resource limits: heap, stack and the whole-message item budget.

Portable like test_cbor.py (plain functions and ``assert``), so that the real
MicroPython with a 64 KiB heap checks that running out of heap or stack while
decoding is a TooLarge, never a bare MemoryError or RuntimeError.
"""

import gc
import sys

from device_runtime.core.cbor import MAX_DEPTH_CEILING, Tag, dumps, loads
from device_runtime.core.errors import DecodeError, ProtocolError, TooLarge

PORTABLE = True
MICROPYTHON = sys.implementation.name == "micropython"


def _rejects(data, error, fragment, max_depth=16, max_items=4096, max_total_items=65536):
    """Decoding *data* raises exactly *error*, with *fragment* in its reason.

    Failures name the reason only: the inputs here can be most of the heap.
    """
    try:
        loads(data, max_depth, max_items, max_total_items)
    except ProtocolError as exc:
        assert type(exc) is error, exc.explain()
        assert fragment in exc.reason, exc.reason
        return
    raise AssertionError("accepted, expected " + fragment)


def _filled(size, value):
    """A bytearray of *size* bytes of *value*, allocated once."""
    data = bytearray(size)
    for i in range(size):
        data[i] = value
    return data


def test_a_message_larger_than_the_heap_is_too_large_not_a_crash():
    data = _filled(3 + 2048, 0x80)
    data[0:3] = b"\x99\x08\x00"
    try:
        decoded = loads(data)
    except TooLarge as exc:
        assert "does not fit in memory" in exc.reason
        return
    assert len(decoded) == 2048


def _heap_filling_buffer():
    """(buffer, fillers): on MicroPython a bytearray as long as the heap's longest
    free run, and fillers taking every other run that long, so that no copy of
    the buffer fits anywhere while small allocations still do. On CPython,
    where memory is not the question, 1 MiB and no fillers."""
    if not MICROPYTHON:
        return bytearray(1 << 20), []
    gc.collect()
    size = gc.mem_free()
    while True:
        try:
            buffer = bytearray(size)
            break
        except MemoryError:
            size -= 64
    fillers = []
    while True:
        try:
            fillers.append(bytearray(size))
        except MemoryError:
            return buffer, fillers


def test_a_bytearray_is_decoded_in_place_not_copied():
    buffer, fillers = _heap_filling_buffer()
    trailing = f"trailing bytes: {len(buffer) - 1} after the item that ends at offset 1"
    _rejects(buffer, DecodeError, trailing)
    _rejects(memoryview(buffer), DecodeError, trailing)
    assert fillers is not None


def test_a_string_the_heap_cannot_hold_is_too_large_not_a_memory_error():
    buffer, fillers = _heap_filling_buffer()
    head = b"\x5a" if len(buffer) > 0x10004 else b"\x59"
    width = len(head) + (4 if head == b"\x5a" else 2)
    size = len(buffer) - width
    buffer[0:width] = head + size.to_bytes(width - 1, "big")
    try:
        decoded = loads(buffer)
    except TooLarge as exc:
        assert exc.reason == f"message does not fit in memory ({len(buffer)} bytes)"
        return
    assert not MICROPYTHON, "a copy of the heap's longest free run was made"
    assert len(decoded) == size
    assert fillers is not None


def test_max_depth_is_capped_at_the_ceiling():
    assert MAX_DEPTH_CEILING == 64
    for bad in (MAX_DEPTH_CEILING + 1, -1, 10**6, "16", None):
        try:
            loads(b"\x00", max_depth=bad)
        except ValueError as exc:
            assert "max_depth must be an int from 0 to 64" in str(exc)
            continue
        raise AssertionError("accepted max_depth " + repr(bad))
    assert loads(b"\x00", max_depth=0) == 0
    _rejects(b"\x80", TooLarge, "nesting deeper than 0 at offset 0", max_depth=0)


def test_nesting_at_the_ceiling_decodes_or_is_too_large():
    # CPython's recursion limit always leaves room for the ceiling; a board's
    # stack may not, and then running out of it is TooLarge, not a crash.
    for data in (
        b"\x81" * MAX_DEPTH_CEILING + b"\x00",
        b"\xc0" * MAX_DEPTH_CEILING + b"\x00",
        b"\xa1\x00" * MAX_DEPTH_CEILING + b"\x00",
    ):
        try:
            assert loads(data, max_depth=MAX_DEPTH_CEILING) is not None
        except TooLarge as exc:
            assert MICROPYTHON, exc.reason
            assert "deeper than the stack allows" in exc.reason, exc.reason


def _recurse(frames, action):
    if frames:
        return _recurse(frames - 1, action)
    return action()


def _frames_available():
    frames = 8
    try:
        while True:
            _recurse(frames, _nothing)
            frames += 8
    except RuntimeError:
        return frames


def _nothing():
    return None


def _deep_decode():
    try:
        loads(b"\xa1\x00" * MAX_DEPTH_CEILING + b"\x00", max_depth=MAX_DEPTH_CEILING)
    except TooLarge as exc:
        return exc.reason
    return "decoded"


def test_hitting_the_recursion_limit_is_too_large():
    """Decode from ever less deep in the stack: first the interpreter's limit is
    hit inside the decoder, which must report TooLarge, then there is room."""
    available = _frames_available()
    outcomes = []
    for room in range(1, available, 2):
        try:
            outcomes.append(_recurse(available - room, _deep_decode))
        except RuntimeError:
            # No room to enter the decoder at all.
            continue
        if outcomes[-1] == "decoded":
            break
    limited = [reason for reason in outcomes if reason != "decoded"]
    assert limited, outcomes
    for reason in limited:
        assert reason.startswith("nesting at offset "), reason
        assert reason.endswith(" is deeper than the stack allows"), reason


def test_the_whole_message_has_a_budget_of_data_items():
    assert loads(dumps([[], []]), max_total_items=3) == [[], []]
    _rejects(
        dumps([[], [], []]),
        TooLarge,
        "data item budget of 3 exceeded by the head at offset 0",
        max_total_items=3,
    )
    # A map entry is two items (key and value), a tag one more.
    assert loads(dumps({1: 2}), max_total_items=3) == {1: 2}
    _rejects(
        dumps({1: 2}), TooLarge, "budget of 2 exceeded by the head at offset 0", max_total_items=2
    )
    assert loads(dumps(Tag(1, 0)), max_total_items=2) == Tag(1, 0)
    _rejects(dumps(Tag(1, 0)), TooLarge, "budget of 1 exceeded", max_total_items=1)
    _rejects(b"\x00", TooLarge, "budget of 0 exceeded by the head at offset 0", max_total_items=0)


def test_many_small_containers_exhaust_the_budget_before_the_heap():
    # 64 arrays of 64 empty arrays: 4 KiB of input, every container within
    # max_items, yet 4161 items, more than a 64 KiB heap holds. A budget of
    # 256 stops it at the third inner array's head (offset 2 + 2 * 66),
    # before anything of the rest is built.
    data = _filled(2 + 64 * 66, 0x80)
    data[0:2] = b"\x98\x40"
    for i in range(64):
        data[2 + i * 66 : 4 + i * 66] = b"\x98\x40"
    _rejects(
        data,
        TooLarge,
        "data item budget of 256 exceeded by the head at offset 134",
        max_items=64,
        max_total_items=256,
    )
