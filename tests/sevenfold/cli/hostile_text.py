"""Strings a device, a sensor, a capture or a server could send to trick an operator's
terminal, what the command line must show for each instead, and the check that
nothing a terminal would act on reached its output."""

from __future__ import annotations

import unicodedata

from sevenfold.cli.output import MAX_SHOWN

SHOWN = {
    "[/x]": "[/x]",
    "[green]online": "[green]online",
    "[link=file:///etc/passwd]x[/link]": "[link=file:///etc/passwd]x[/link]",
    "\x1b[2J\x1b[31mred": "\\x1b[2J\\x1b[31mred",
    "a\rb": "a\\rb",
    "\u202egnp.exe": "\\u202egnp.exe",
}
"""Markup (a crash, a forged status, a planted link), a screen clear and recolour,
an overwrite, a right-to-left override; each shown as the characters it is."""

LONG = "L" * 10_000
LONG_SHOWN = "L" * MAX_SHOWN + f"… ({len(LONG) - MAX_SHOWN} more characters)"

HOSTILE = (*SHOWN, LONG)

WIDE = {"COLUMNS": "20000"}
"""A terminal wide enough that no table column has to be cropped or wrapped."""

_ACTED_ON = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})


def shown(value: str) -> str:
    """What the operator must see for *value*; a value of plain characters is seen as it is."""
    return LONG_SHOWN if value == LONG else SHOWN.get(value, value)


def assert_harmless(output: str) -> None:
    """No control, format or separator character but the newline is in *output*."""
    acted_on = {char for char in output if char != "\n" and unicodedata.category(char) in _ACTED_ON}
    assert acted_on == set(), f"reached the terminal: {sorted(acted_on)!r}"


def row_showing(output: str, value: str, *, times: int) -> str:
    """The line of a table that shows *value* (as it must be shown) at least *times* times."""
    expected = shown(value)
    rows = [line for line in output.splitlines() if line.count(expected) >= times]
    assert rows, f"no row shows {expected!r} {times} times in:\n{output}"
    return rows[0]
