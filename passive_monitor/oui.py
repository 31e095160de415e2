"""MAC address to manufacturer, from the IEEE registration authority's public lists.

A vendor name on an otherwise silent asset is often the only clue to what it is
(a Rockwell or Schneider MAC on a plant network is almost always a controller or
a network module), so the inventory looks every MAC up. The lists come from the
Debian ``ieee-data`` package; the small MA-M and MA-S blocks are consulted before
the 24-bit MA-L block because they carve sub-ranges out of a larger assignment.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from device_runtime.core.errors import SevenfoldError

DEFAULT_DIRECTORY = Path("/usr/share/ieee-data")
# (file name, hex digits of the assignment); longest prefix first.
_REGISTRIES = (("oui36.csv", 9), ("mam.csv", 7), ("oui.csv", 6))


class OuiListMissing(SevenfoldError):
    """The IEEE list is not installed, so MAC vendors cannot be named."""

    code = "oui-missing"


@dataclass(frozen=True, slots=True, kw_only=True)
class OuiRegistry:
    """Assignments by prefix length; lookups try the most specific block first."""

    blocks: tuple[tuple[int, dict[str, str]], ...]

    @classmethod
    def load(cls, directory: Path = DEFAULT_DIRECTORY) -> OuiRegistry:
        """Read the lists; the 24-bit list is required, the finer ones are optional."""
        main = directory / "oui.csv"
        if not main.is_file():
            raise OuiListMissing(f"{main} not found: install the Debian package ieee-data")
        blocks: list[tuple[int, dict[str, str]]] = []
        for name, digits in _REGISTRIES:
            path = directory / name
            if path.is_file():
                blocks.append((digits, _read_registry(path, digits)))
        return cls(blocks=tuple(blocks))

    def vendor(self, mac: str) -> str | None:
        """The organisation a MAC's prefix is assigned to, or None (random or unlisted)."""
        digits = "".join(c for c in mac.upper() if c in "0123456789ABCDEF")
        if len(digits) != 12:
            return None
        for length, table in self.blocks:
            found = table.get(digits[:length])
            if found is not None:
                return found
        return None


def _read_registry(path: Path, digits: int) -> dict[str, str]:
    table: dict[str, str] = {}
    with path.open(newline="", encoding="utf-8", errors="replace") as handle:
        for row in csv.reader(handle):
            if len(row) < 3 or row[0] == "Registry":
                continue
            assignment = row[1].strip().upper()
            if len(assignment) == digits:
                table[assignment] = row[2].strip()
    return table
