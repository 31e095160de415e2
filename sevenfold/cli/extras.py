"""Commands that need an optional part of the installation say so plainly.

A sensor is installed with ``sevenfold[monitor]`` and a device with
``sevenfold[device]``; neither has the server's dependencies, yet both get
the one ``sevenfold`` command. The commands that need more import it when
they run, and a missing module becomes this error instead of a traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from device_runtime.core.errors import SevenfoldError


class MissingExtra(SevenfoldError):
    """This command needs dependencies the installation does not have."""

    code = "missing-extra"


def missing_extra(*, command: str, extra: str, error: ModuleNotFoundError) -> MissingExtra:
    """The error for *command*, which needs ``sevenfold[extra]`` and lacks *error*'s module."""
    return MissingExtra(
        f"`sevenfold {command}` needs the {extra} dependencies, which are not installed"
        f" (no module {error.name!r}): pip install 'sevenfold[{extra}]'"
    )


@contextmanager
def needs_extra(command: str, extra: str) -> Iterator[None]:
    """Imports made inside the block belong to *extra*; a missing one is named, not traced."""
    try:
        yield
    except ModuleNotFoundError as exc:
        raise missing_extra(command=command, extra=extra, error=exc) from None
