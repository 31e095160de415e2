"""The protocol's limits are what the smallest supported device can decode, measured.

The smallest supported device has a 64 KiB MicroPython heap. Worst-case
messages at each limit (the longest text and byte strings in every slot of the
envelope, the most data items of the heaviest kinds, the widest containers,
the deepest nesting, and mixes of many items with one long string) are built
here and decoded by the real ``micropython -X heapsize=64K`` with the device
core loaded from the firmware bundle's bytecode (``limits_check.py``). Every
one must decode, or be refused for a schema reason, without running out of
heap or stack, while a fifth of the free heap is held back and three
quarters of the stack are already taken: that is the margin. Messages one step
over a limit must be refused with TooLarge naming that limit.

A second run doubles one limit at a time: then some worst case must run out of
memory (or stack), which shows the limits are the largest powers of two that
pass with the margin. docs/protocol.md records the numbers.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from device_runtime.core import protocol
from device_runtime.core.cbor import Tag, dumps
from device_runtime.core.errors import ProtocolError, TooLarge
from firmware_images.micropython_bundle import build
from tests.components import binary

REPO = Path(__file__).resolve().parents[2]
CHECK = REPO / "tests" / "device_runtime" / "limits_check.py"
HEAP = "heapsize=64K"
RESERVE_PERCENT = 20
STACK_PERCENT = 75

Limits = tuple[int, int, int, int]
LIMITS: Limits = (
    protocol.MAX_DOWN_MESSAGE,
    protocol.MAX_DEPTH,
    protocol.MAX_ITEMS,
    protocol.MAX_TOTAL_ITEMS,
)
CID = b"\x00" * protocol.CORRELATION_BYTES
ENVELOPE_ITEMS = 8
"""Data items of an envelope before its body value: the map, four keys, three values."""

OUT_OF_MEMORY = "too-large: message does not fit in memory"
OUT_OF_STACK = "is deeper than the stack allows"


def envelope(heavy: bytes, *, slot: str = "b") -> bytes:
    """An envelope whose *slot* ("b", "t" or a fifth "key") holds the encoded *heavy* item."""
    head = dumps("v") + dumps(1) + dumps("id") + dumps(CID)
    if slot == "t":
        return b"\xa4" + head + dumps("b") + dumps({}) + dumps("t") + heavy
    head += dumps("t") + dumps("heartbeat")
    if slot == "b":
        return b"\xa4" + head + dumps("b") + heavy
    return b"\xa4" + head + heavy + dumps(0)


def exactly(size: int, build: Callable[[int], bytes]) -> bytes:
    """``build(n)`` for the content length *n* that makes the message *size* bytes."""
    length = size - len(build(0))
    while len(build(length)) > size:
        length -= 1
    message = build(length)
    assert len(message) == size, (size, len(message))
    return message


def content(make: type[str] | type[bytes], length: int, char: str = "a") -> str | bytes:
    """A string of *length* encoded bytes, of *char* as far as it goes, then of "a"."""
    width = len(char.encode())
    text = char * (length // width) + "a" * (length % width)
    return text if make is str else text.encode()


def filling(size: int, make: type[str] | type[bytes], *, slot: str = "b", char: str = "a") -> bytes:
    """The envelope whose one string in *slot* makes it exactly *size* bytes."""
    return exactly(size, lambda n: envelope(dumps(content(make, n, char)), slot=slot))


def item_tree(items: int, per: int, leaf: object, leaf_items: int) -> list[object]:
    """Arrays of at most *per* leaves, *items* data items in all (the arrays included)."""
    children: list[object] = []
    while items > leaf_items:
        items -= 1
        count = min(per, items // leaf_items)
        items -= count * leaf_items
        children.append([leaf] * count)
    assert len(children) <= per, "the total does not fit in two levels of arrays"
    return children


def items_message(limits: Limits, leaf: object, leaf_items: int = 1) -> bytes:
    _, _, per, total = limits
    return envelope(dumps(item_tree(total - ENVELOPE_ITEMS - 1, per, leaf, leaf_items)))


def items_and_string(limits: Limits, make: type[str] | type[bytes]) -> bytes:
    """The most data items plus one string that takes every byte they leave."""
    size, _, per, total = limits
    tree = item_tree(total - ENVELOPE_ITEMS - 2, per - 1, [], 1)
    return exactly(size, lambda n: envelope(dumps([*tree, content(make, n)])))


def nested(depth: int, kind: str) -> bytes:
    """An envelope nesting *depth* levels in all; the envelope is the first."""
    value: object = 0
    for _ in range(depth - 1):
        value = [value] if kind == "array" else {0: value} if kind == "map" else Tag(0, value)
    return envelope(dumps(value))


def worst_cases(limits: Limits) -> dict[str, bytes]:
    """Messages exactly at the limits: each must decode or fail a schema check."""
    size, depth, per, total = limits
    # As wide as both limits allow: the body container is the ninth item.
    widest_array = min(per, total - ENVELOPE_ITEMS - 1)
    widest_map = min(per, (total - ENVELOPE_ITEMS - 1) // 2)
    return {
        "text-in-type": filling(size, str, slot="t"),
        "text-in-body": filling(size, str),
        "text-3-byte-chars": filling(size, str, char="\u6c34"),
        "text-as-key": filling(size, str, slot="key"),
        "bytes-in-body": filling(size, bytes),
        "bytes-as-key": filling(size, bytes, slot="key"),
        "items-empty-arrays": items_message(limits, []),
        "items-empty-maps": items_message(limits, {}),
        "items-empty-bytes": items_message(limits, b""),
        "items-tags": items_message(limits, Tag(0, []), 2),
        "items-big-ints": items_message(limits, -(2**64)),
        "items-and-text": items_and_string(limits, str),
        "items-and-bytes": items_and_string(limits, bytes),
        "widest-array": envelope(dumps([[]] * widest_array)),
        "widest-map": envelope(dumps({bytes([i]): [] for i in range(widest_map)})),
        "deepest-arrays": nested(depth, "array"),
        "deepest-maps": nested(depth, "map"),
        "deepest-tags": nested(depth, "tag"),
    }


def over_limits(limits: Limits) -> dict[str, tuple[bytes, str]]:
    """Messages one step over a limit, and the TooLarge reason each must get."""
    size, depth, per, total = limits
    return {
        "over-size": (filling(size + 1, str), f"is {size + 1} bytes, limit {size}"),
        "over-total-items": (
            items_message((size, depth, per, total + 1), []),
            f"data item budget of {total} exceeded",
        ),
        "over-container": (envelope(dumps([[]] * (per + 1))), f"{per + 1} entries, limit {per}"),
        "over-depth": (nested(depth + 1, "map"), f"nesting deeper than {depth}"),
        # The two shapes that exhausted a 64 KiB heap under the old limits.
        "old-64-by-64-arrays": (envelope(dumps([[[]] * 64] * 64)), "too-large: "),
        "old-12k-string": (filling(12288, str), "too-large: "),
    }


@pytest.fixture(scope="module")
def bytecode(tmp_path_factory: pytest.TempPathFactory) -> Path:
    binary("micropython")
    tree = tmp_path_factory.mktemp("mpy")
    build(root=REPO, out=tree, extra=[CHECK])
    return tree


def decode_on_device(
    bytecode: Path, folder: Path, messages: dict[str, bytes], limits: Limits | None = None
) -> tuple[list[str], dict[str, str]]:
    """Header lines and each message's outcome, decoded by the 64 KiB MicroPython."""
    folder.mkdir()
    for name, data in messages.items():
        (folder / name).write_bytes(data)
    arguments = [str(folder), str(RESERVE_PERCENT), str(STACK_PERCENT)]
    arguments += [str(limit) for limit in limits or ()]
    result = subprocess.run(
        [binary("micropython"), "-X", HEAP, "-m", "tests.device_runtime.limits_check", *arguments],
        cwd=folder,
        env={**os.environ, "MICROPYPATH": f"{bytecode}:.frozen"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert result.stderr == "", output
    header = [line for line in result.stdout.splitlines() if not line.startswith("case ")]
    outcomes = {}
    for line in result.stdout.splitlines():
        if line.startswith("case "):
            _, name, size, outcome = line.split(" ", 3)
            assert int(size) == len(messages[name])
            outcomes[name] = outcome
    assert set(outcomes) == set(messages), output
    return header, outcomes


def test_worst_cases_at_the_limits_decode_on_a_64k_device(bytecode: Path, tmp_path: Path) -> None:
    header, outcomes = decode_on_device(bytecode, tmp_path / "at", worst_cases(LIMITS))
    print("\n".join(header))
    for name, outcome in outcomes.items():
        assert not outcome.startswith("too-large"), f"{name}: {outcome}\n" + "\n".join(header)


def test_just_over_the_limits_is_too_large_naming_the_limit(bytecode: Path, tmp_path: Path) -> None:
    cases = over_limits(LIMITS)
    _, outcomes = decode_on_device(
        bytecode, tmp_path / "over", {name: data for name, (data, _) in cases.items()}
    )
    for name, (_, reason) in cases.items():
        outcome = outcomes[name]
        assert outcome.startswith("too-large: "), f"{name}: {outcome}"
        assert reason in outcome, f"{name}: {outcome}"
        assert OUT_OF_MEMORY not in outcome and OUT_OF_STACK not in outcome, f"{name}: {outcome}"


def deep_map_items(depth: int) -> int:
    """Data items of the deepest-maps message: the envelope, then a map and a key per level."""
    return ENVELOPE_ITEMS + 2 * (depth - 1) + 1


SIZE, DEPTH, PER, TOTAL = LIMITS
# One limit doubled at a time; doubling the depth also lets the item budget
# hold the deeper maps, so that the stack, not the budget, is what is tried.
STEPS: dict[str, Limits] = {
    "size": (2 * SIZE, DEPTH, PER, TOTAL),
    "total-items": (SIZE, DEPTH, PER, 2 * TOTAL),
    "depth": (SIZE, 2 * DEPTH, PER, max(TOTAL, deep_map_items(2 * DEPTH))),
}


@pytest.mark.parametrize("limit", sorted(STEPS))
def test_doubling_a_limit_no_longer_fits_the_margin(
    limit: str, bytecode: Path, tmp_path: Path
) -> None:
    step = STEPS[limit]
    header, outcomes = decode_on_device(bytecode, tmp_path / limit, worst_cases(step), step)
    exhausted = [
        name
        for name, outcome in outcomes.items()
        if OUT_OF_MEMORY in outcome or OUT_OF_STACK in outcome
    ]
    assert exhausted, (
        f"every worst case still decodes with the {limit} limit doubled to {step}: "
        "raise the protocol's limit (and docs/protocol.md)\n" + "\n".join(header)
    )


def test_the_messages_sit_exactly_at_or_over_the_limits() -> None:
    """On CPython, where memory is no concern, only the limits themselves decide."""
    for name, data in worst_cases(LIMITS).items():
        try:
            protocol.decode(data, protocol.MAX_DOWN_MESSAGE)
        except TooLarge as exc:
            raise AssertionError(f"{name} is over a limit: {exc.reason}") from None
        except ProtocolError:
            pass
    for name, (data, reason) in over_limits(LIMITS).items():
        with pytest.raises(TooLarge) as refused:
            protocol.decode(data, protocol.MAX_DOWN_MESSAGE)
        assert reason in refused.value.explain(), name
