"""Exception frames for CPython devices: the traceback module's view of an exception.

The failure capture (``core/failure_capture.py``) takes an exception's frames
through this one function, so the core needs neither ``traceback`` (CPython)
nor ``sys.print_exception`` (MicroPython).
"""

from __future__ import annotations

import traceback


def exception_frames(exc: BaseException) -> list[tuple[str, int, str]]:
    """(file, line, function) of each frame *exc* passed through, outermost first."""
    return [
        (frame.filename, frame.lineno or 0, frame.name)
        for frame in traceback.extract_tb(exc.__traceback__)
    ]
