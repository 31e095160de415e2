"""The device codec against cbor2, the reference the server side already trusts.

CPython only: hypothesis builds values and hostile byte strings, and cbor2
decides what the bytes should have been.
"""

from __future__ import annotations

import array
from collections.abc import Mapping
from typing import Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device_runtime.core.cbor import Tag, dumps, loads
from device_runtime.core.errors import DecodeError, TooLarge

EXAMPLES = settings(max_examples=300, deadline=None)

# Tag numbers cbor2 leaves as a plain CBORTag instead of decoding into a Python type.
GENERIC_TAGS = st.one_of(
    st.sampled_from([6, 7, 16, 17, 18, 19, 21, 22, 23, 24, 26, 27, 32, 33, 34, 61, 96, 98, 1040]),
    st.integers(min_value=65536, max_value=2**64 - 1),
)
INT_KEYS = st.integers(min_value=-(2**64), max_value=2**64 - 1)
# One map holds text keys or byte-string keys, never both (the codec refuses the mix).
TEXT_KEYED = st.one_of(INT_KEYS, st.text(max_size=8))
BYTES_KEYED = st.one_of(INT_KEYS, st.binary(max_size=8))
LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64 - 1),
    st.binary(max_size=80),
    st.text(max_size=20),
)
VALUES = st.recursive(
    LEAVES,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(TEXT_KEYED, children, max_size=5),
        st.dictionaries(BYTES_KEYED, children, max_size=5),
        st.builds(Tag, GENERIC_TAGS, children),
    ),
    max_leaves=25,
)


def to_cbor2(value: Any) -> Any:
    if isinstance(value, Tag):
        return cbor2.CBORTag(value.tag, to_cbor2(value.value))
    if isinstance(value, list):
        return [to_cbor2(item) for item in value]
    if isinstance(value, dict):
        return {key: to_cbor2(item) for key, item in value.items()}
    return value


def from_cbor2(value: Any) -> Any:
    """cbor2's value as ours; inside tags cbor2 returns tuples and frozen maps."""
    if isinstance(value, cbor2.CBORTag):
        return Tag(value.tag, from_cbor2(value.value))
    if isinstance(value, (list, tuple)):
        return [from_cbor2(item) for item in value]
    if isinstance(value, Mapping):
        return {key: from_cbor2(item) for key, item in value.items()}
    return value


def in_bytewise_key_order(value: Any) -> Any:
    """*value* for cbor2 with every map already in RFC 8949 section 4.2.1 order.

    cbor2's ``canonical=True`` sorts keys length first (the RFC 7049 rule), so
    the reference for the newer bytewise rule is cbor2 keeping insertion order
    after the keys were sorted by cbor2's own encoding of them.
    """
    if isinstance(value, cbor2.CBORTag):
        return cbor2.CBORTag(value.tag, in_bytewise_key_order(value.value))
    if isinstance(value, list):
        return [in_bytewise_key_order(item) for item in value]
    if isinstance(value, dict):
        ordered = sorted(value.items(), key=lambda entry: cbor2.dumps(entry[0]))
        return {key: in_bytewise_key_order(item) for key, item in ordered}
    return value


def same(left: Any, right: Any) -> bool:
    """Equality that also tells True from 1 and bytes from str, as the wire does."""
    if type(left) is not type(right):
        return False
    if isinstance(left, Tag):
        return left.tag == right.tag and same(left.value, right.value)
    if isinstance(left, list):
        return len(left) == len(right) and all(map(same, left, right))
    if isinstance(left, dict):
        return left.keys() == right.keys() and all(same(left[k], right[k]) for k in left)
    return bool(left == right)


def contains_tag(value: Any) -> bool:
    if isinstance(value, Tag):
        return True
    if isinstance(value, list):
        return any(map(contains_tag, value))
    if isinstance(value, dict):
        return any(map(contains_tag, value.values()))
    return False


def decode_or_reject(data: bytes) -> tuple[bool, Any]:
    """Decode *data*, allowing only the two documented rejections."""
    try:
        return True, loads(data)
    except (DecodeError, TooLarge):
        return False, None


@EXAMPLES
@given(VALUES)
def test_encoding_matches_cbor2_in_bytewise_key_order(value: Any) -> None:
    assert dumps(value) == cbor2.dumps(in_bytewise_key_order(to_cbor2(value)))


@EXAMPLES
@given(VALUES)
def test_cbor2_reads_what_we_write(value: Any) -> None:
    assert same(from_cbor2(cbor2.loads(dumps(value))), value)


@EXAMPLES
@given(VALUES)
def test_we_read_what_cbor2_writes_in_any_key_order(value: Any) -> None:
    reference = to_cbor2(value)
    assert same(loads(cbor2.dumps(reference)), value)
    assert same(loads(cbor2.dumps(reference, canonical=True)), value)


def test_cbor2_canonical_order_differs_and_is_still_read() -> None:
    value = {"a": 1, 256: 2}
    length_first = cbor2.dumps(value, canonical=True)
    assert length_first == bytes.fromhex("a2616101190100" + "02")
    assert dumps(value) == bytes.fromhex("a2190100026161" + "01")
    assert loads(length_first) == value


@EXAMPLES
@given(st.binary(max_size=64))
def test_arbitrary_bytes_are_decoded_or_rejected_cleanly(data: bytes) -> None:
    accepted, value = decode_or_reject(data)
    if not accepted:
        return
    assert same(loads(dumps(value)), value)
    if not contains_tag(value):
        assert same(cbor2.loads(data), value)


MUTATIONS = st.sampled_from(["flip", "truncate", "insert", "delete"])


@EXAMPLES
@given(VALUES, MUTATIONS, st.integers(min_value=0), st.integers(min_value=0, max_value=255))
def test_mutated_messages_are_decoded_or_rejected_cleanly(
    value: Any, mutation: str, where: int, byte: int
) -> None:
    data = bytearray(dumps(value))
    at = where % len(data)
    if mutation == "flip":
        data[at] ^= byte or 0x80
    elif mutation == "truncate":
        del data[at:]
    elif mutation == "insert":
        data.insert(at, byte)
    else:
        del data[at]
    accepted, decoded = decode_or_reject(bytes(data))
    if accepted:
        assert same(loads(dumps(decoded)), decoded)


@EXAMPLES
@given(VALUES, st.integers(min_value=0, max_value=6), st.integers(min_value=0, max_value=8))
def test_limits_either_decode_exactly_or_raise_too_large(
    value: Any, max_depth: int, max_items: int
) -> None:
    data = dumps(value)
    try:
        decoded = loads(data, max_depth=max_depth, max_items=max_items)
    except TooLarge:
        return
    assert same(decoded, value)


@pytest.mark.parametrize(
    "value",
    [{b"a": 1, "a": 2}, {"x": 1, 0: 2, b"y": 3}, [{"a": {b"b": 1, "c": 2}}]],
    ids=["same-content", "with-an-int", "nested"],
)
def test_a_map_mixing_byte_string_and_text_keys_is_not_encoded(value: Any) -> None:
    # CPython only: merely building such a map on MicroPython prints the
    # "Comparison between bytes and str" warning the rule exists to avoid.
    with pytest.raises(ValueError, match="may not mix byte-string and text keys"):
        dumps(value)


def test_a_memoryview_of_wider_items_is_a_programming_error() -> None:
    # CPython only: MicroPython's memoryview has no item size to check.
    with pytest.raises(TypeError, match="buffer of single bytes"):
        loads(memoryview(array.array("H", [0x8201, 0x0002])))
