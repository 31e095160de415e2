"""Role and target names made safe for URLs and file names (``urllib.parse.quote``'s rules).

A role may be called ``../x`` or ``?``; the repository serves it under its
percent-encoded name and the client stores it under one that cannot leave the
metadata directory or hide as a dot file. MicroPython has no ``urllib``.
"""

_UNRESERVED = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~"


def quote(name: str, safe: str = "") -> str:
    """Percent-encode every UTF-8 byte of *name* outside the unreserved set and *safe*."""
    out = []
    for byte in name.encode():
        ch = chr(byte)
        out.append(ch if byte < 128 and (ch in _UNRESERVED or ch in safe) else "%%%02X" % byte)
    return "".join(out)


def file_name(name: str) -> str:
    """*name* quoted, with a leading dot quoted too, as one file name."""
    quoted = quote(name)
    return "%2E" + quoted[1:] if quoted.startswith(".") else quoted
