"""Unexpected faults, logged with their traceback once, then only counted.

A bug that a device can trigger at will would otherwise let it write a
traceback into the log per message. The first occurrence of each fault (its
exception type and the line it was raised from) is logged in full; repeats
within *window_s* are counted and summed up in one line when the window has
passed and the fault happens again.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections import OrderedDict
from dataclasses import dataclass

_MAX_KINDS = 1024


@dataclass(slots=True)
class _Seen:
    logged_at: float
    repeats: int = 0


class FaultLog:
    """Logs each distinct fault once per window; safe across threads."""

    def __init__(self, logger: logging.Logger, *, window_s: float = 600.0) -> None:
        self._log = logger
        self.window_s = window_s
        self._seen: OrderedDict[tuple[str, str], _Seen] = OrderedDict()
        self._lock = threading.Lock()

    def fault(self, error: BaseException, *, context: str, now: float) -> None:
        """Log *error* (raised while doing *context*) unless it was logged recently."""
        key = (type(error).__qualname__, _origin(error))
        with self._lock:
            seen = self._seen.get(key)
            if seen is not None and now - seen.logged_at < self.window_s:
                seen.repeats += 1
                return
            repeats = 0 if seen is None else seen.repeats
            self._seen[key] = _Seen(logged_at=now)
            self._seen.move_to_end(key)
            while len(self._seen) > _MAX_KINDS:
                self._seen.popitem(last=False)
        suffix = f" ({repeats} more since it was last logged)" if repeats else ""
        self._log.error(
            "internal error while %s: %s%s", context, type(error).__name__, suffix, exc_info=error
        )


def _origin(error: BaseException) -> str:
    """file:line of the innermost frame, which tells one bug from another."""
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return "?"
    last = frames[-1]
    return f"{last.filename}:{last.lineno}"
