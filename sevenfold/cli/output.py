"""How every subcommand reports: rich for people, JSON for scripts, one error form.

Almost everything a table or a line shows came from somewhere the operator does
not control: device ids, models and versions from enrolling devices, vendors,
firmware and alert titles from plant traffic, reasons and error details from
the server. Rich reads ``[`` in a plain string as markup, so such a value could
crash a table (``[/x]``), forge a status (``[green]online``) or plant a
hyperlink (``[link=...]``); the terminal obeys control characters, so it could
clear the screen or recolour what follows (ESC sequences), overwrite what came
before it (CR, backspace) or reverse the text after it (U+202E). Rich drops a
few control characters on its own but passes ESC, the C1 controls and the
Unicode format characters straight through.

So commands print nothing but what this module builds: every value becomes a
:class:`~rich.text.Text` through :func:`literal`, which never parses markup and
shows each control, format or separator character as a visible escape in
reverse video, so that it is told apart from the same backslash typed by the
sender. Tables come from :func:`literal_table`, lines from :func:`line`.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import ProgressColumn, Task
from rich.table import Column, Table
from rich.text import Text

from device_runtime.core.errors import SevenfoldError

Shown = str | int | float | Path | None
"""A value as it is handed to the output: ``None`` is shown as ``-``."""

Part = Shown | tuple[Shown, str]
"""A value, or a value and the rich style (never markup) to show it in."""

MAX_SHOWN = 1024
"""Characters of one value that are shown; ``--json`` has the rest.

Longer than any legitimate field (the protocol and the sensor routes cap text at
256 characters, an enrollment reason joins four of them), short enough that a
sender cannot fill the operator's screen with one cell and push the other rows
out of sight.
"""

ESCAPE_STYLE = "reverse"

_ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})
"""Controls, format characters (bidi overrides, zero-width), lone surrogates (which
no terminal encoding can write), private-use characters and line/paragraph separators."""


def literal(value: Shown, style: str = "") -> Text:
    """*value* as text that shows exactly what it is and does nothing to the terminal."""
    if value is None:
        return Text("-", style=style)
    raw = str(value)
    shown = Text(style=style)
    start = 0
    visible = raw[:MAX_SHOWN]
    for index, char in enumerate(visible):
        if unicodedata.category(char) in _ESCAPED_CATEGORIES:
            shown.append(visible[start:index])
            shown.append(char.encode("unicode_escape").decode("ascii"), style=ESCAPE_STYLE)
            start = index + 1
    shown.append(visible[start:])
    if len(raw) > MAX_SHOWN:
        shown.append(f"… ({len(raw) - MAX_SHOWN} more characters)", style=ESCAPE_STYLE)
    return shown


def line(*parts: Part) -> Text:
    """One line assembled from literal parts; a ``(value, style)`` part is styled."""
    assembled = Text()
    for part in parts:
        if isinstance(part, tuple):
            value, style = part
            assembled.append_text(literal(value, style))
        else:
            assembled.append_text(literal(part))
    return assembled


def literal_table(*, headers: Sequence[str], title: str, rows: Iterable[Sequence[Part]]) -> Table:
    """A table whose title and every cell are literal text (see :func:`line`).

    Every column may wrap, and a word too long for its column is folded rather
    than cut: a column that may not wrap keeps its full width, so one long value
    in it would squeeze every other column of the table (a device's status
    among them) out of sight, and a cut value could hide what follows the cut.
    """
    columns = (Column(header, overflow="fold") for header in headers)
    table = Table(*columns, title=literal(title))
    for row in rows:
        table.add_row(*(line(cell) for cell in row))
    return table


def say(*parts: Part) -> None:
    """Print one literal line on stdout."""
    show(line(*parts))


def show(renderable: Table | Text) -> None:
    """Print a table or a line built here on stdout (a plain string would be read as markup)."""
    Console().print(renderable)


def warn(*parts: Part) -> None:
    """A warning on stderr that does not stop the command."""
    stderr_console().print(line(("warning", "yellow"), " ", *parts))


def stderr_console() -> Console:
    """The console for errors, warnings and progress.

    Made anew for each use, as :func:`show` makes its own, rather than once at
    import, so that it measures the terminal (and ``COLUMNS``) the command runs in.
    """
    # soft_wrap: an error is one line a script can grep, whatever the terminal width.
    return Console(stderr=True, soft_wrap=True)


class LiteralDescriptionColumn(ProgressColumn):
    """A progress bar's description (a file name, which anyone may have chosen) as literal text."""

    def render(self, task: Task) -> Text:
        return literal(task.description, "bold")


@contextmanager
def reported_errors() -> Iterator[None]:
    """Turn a Sevenfold error into one clear line and exit status 2, never a traceback."""
    try:
        yield
    except SevenfoldError as exc:
        stderr_console().print(line(("error", "red"), " ", exc.explain()))
        raise typer.Exit(2) from exc


def emit_json(value: Any) -> None:
    """JSON for scripts; ``json.dumps`` escapes every control and non-ASCII character."""
    typer.echo(json.dumps(value, indent=2, sort_keys=True, default=str))
