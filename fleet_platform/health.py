"""What a liveness check reports about one part of the server."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Health:
    """``ok`` or not, and one line an operator can act on."""

    ok: bool
    detail: str
