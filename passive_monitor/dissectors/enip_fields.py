"""Field accumulation shared by the EtherNet/IP and CIP parsers."""

from __future__ import annotations

from typing import cast

from passive_monitor.dissectors.base import FieldValue

Fields = dict[str, FieldValue]


def append(fields: Fields, name: str, value: int) -> None:
    """Repeated values become tuples, the shape tshark gives a field seen several times."""
    previous = fields.get(name)
    if isinstance(previous, int) and not isinstance(previous, bool):
        fields[name] = (previous, value)
    elif isinstance(previous, tuple):
        # Only this function builds tuples under these names: they hold integers.
        fields[name] = (*cast(tuple[int, ...], previous), value)
    else:
        fields[name] = value
