"""Reading dissector fields whatever shape they arrive in.

Dissectors emit tshark-named fields as scalars or, for repeated items, as
tuples; a hostile packet can put any of those shapes where another was
expected. Rules and the inventory read them through these functions so that a
surprising value means "absent", never an exception inside the sensor loop.
"""

from __future__ import annotations

from collections.abc import Mapping

from passive_monitor.dissectors.base import FieldValue

Fields = Mapping[str, FieldValue]


def _one_int(value: object) -> int | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip(), 0)
        except ValueError:
            return None
    return None


def ints(fields: Fields, name: str) -> tuple[int, ...]:
    """Every integer the field holds, in order.

    Plain integers and absent fields are by far the common case on the
    per-message path, so they return before the general shape handling.
    """
    value = fields.get(name)
    if type(value) is int:
        return (value,)
    if value is None:
        return ()
    items: tuple[object, ...] = value if isinstance(value, tuple) else (value,)
    found = (_one_int(item) for item in items)
    return tuple(item for item in found if item is not None)


def first_int(fields: Fields, name: str) -> int | None:
    """The field's first integer, or None when absent or not a number."""
    value = fields.get(name)
    if type(value) is int:
        return value
    if value is None:
        return None
    found = ints(fields, name)
    return found[0] if found else None


def strs(fields: Fields, name: str) -> tuple[str, ...]:
    """Every text value the field holds, stripped; bytes are decoded leniently."""
    value = fields.get(name)
    items: tuple[object, ...] = value if isinstance(value, tuple) else (value,)
    out: list[str] = []
    for item in items:
        if isinstance(item, bytes):
            item = item.decode("latin-1")
        if isinstance(item, str):
            out.append(item.strip().strip("\x00").strip())
    return tuple(out)


def first_str(fields: Fields, name: str) -> str | None:
    """The field's first non-empty text value."""
    for item in strs(fields, name):
        if item:
            return item
    return None
