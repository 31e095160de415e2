"""Decimal digits as the wire has them: ASCII ``0``-``9`` only.

``str.isdigit`` accepts every Unicode digit (``²``, ``٣``), which ``int``
then refuses with a ValueError, or reads as a number nobody wrote: a
parser that checks with it lets a peer's text crash it. Every number this
core reads from text (HTTP status lines and lengths, TUF expiry stamps and
spec versions, the console's port) is checked here first. Portable:
CPython and MicroPython.
"""


def is_digits(text: str) -> bool:
    """Whether *text* is one or more ASCII decimal digits."""
    return bool(text) and all("0" <= ch <= "9" for ch in text)
