"""Decimal digits as the wire has them: ASCII ``0``-``9`` only.

``str.isdigit`` accepts every Unicode digit (``²``, ``٣``), which ``int``
then refuses with a ValueError, or reads as a number nobody wrote: a
parser that checks with it lets a peer's text crash it. The numbers the
update path reads from text (HTTP status lines and lengths, TUF expiry
stamps and spec versions) are checked here first; the console, which a
64 KiB device holds with little to spare, checks its one number in place. Portable:
CPython and MicroPython.
"""


def is_digits(text: str) -> bool:
    """Whether *text* is one or more ASCII decimal digits."""
    return bool(text) and all("0" <= ch <= "9" for ch in text)
