"""Exception frames for MicroPython: ``sys.print_exception`` into a buffer, parsed.

MicroPython keeps no traceback objects; the one way to an exception's frames
is the text ``sys.print_exception`` writes, a ``  File "f", line n, in g``
line per frame, outermost first, which this parses into the (file, line,
function) triples the failure capture (``core/failure_capture.py``) stores.
A line that is not a frame (the header, the exception's own line) is skipped.
"""

import io
import sys


def parse_frames(text: str) -> "list[tuple[str, int, str]]":
    """The frames of a printed traceback."""
    frames = []
    for line in text.split("\n"):
        line = line.strip()
        if not line.startswith('File "'):
            continue
        end = line.find('", line ')
        if end < 0:
            continue
        rest = line[end + 8 :]
        comma = rest.find(", in ")
        number = rest if comma < 0 else rest[:comma]
        try:
            lineno = int(number)
        except ValueError:
            continue
        function = "" if comma < 0 else rest[comma + 5 :]
        frames.append((line[6:end], lineno, function))
    return frames


def exception_frames(exc: BaseException) -> "list[tuple[str, int, str]]":
    """(file, line, function) of each frame *exc* passed through, outermost first."""
    buffer = io.StringIO()
    sys.print_exception(exc, buffer)  # type: ignore[attr-defined]
    return parse_frames(buffer.getvalue())
