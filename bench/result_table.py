"""How a bench prints its result for people: each section, then one line per row."""

from __future__ import annotations

from typing import Any


def print_rows(result: dict[str, list[dict[str, Any]]]) -> None:
    """Each section's name, then its rows as ``key value`` pairs (floats to 2 places)."""
    for name, rows in result.items():
        print(name)
        for row in rows:
            print("  " + ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}"
                                   for k, v in row.items()))  # fmt: skip
