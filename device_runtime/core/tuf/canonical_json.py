"""OLPC canonical JSON, as securesystemslib encodes it: the bytes TUF signatures cover.

Keys sorted by code point, no whitespace, strings with only ``\\`` and ``"``
escaped and everything else as raw UTF-8, integers, booleans and null; floats
have no canonical form and are refused. The parts are collected in one list and
joined once, so no intermediate string is copied per nesting level.
"""

from device_runtime.core.tuf.error import TufError

MAX_DEPTH = 32


def _encode(value: object, out: list[str], depth: int) -> None:
    if depth > MAX_DEPTH:
        raise TufError("bad-metadata", "metadata nests deeper than " + str(MAX_DEPTH))
    if isinstance(value, str):
        out.append('"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"')
    elif value is True or value is False or value is None:
        out.append("true" if value is True else "false" if value is False else "null")
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, dict):
        out.append("{")
        for n, key in enumerate(sorted(value)):
            if not isinstance(key, str):
                raise TufError("bad-metadata", "object key is not a string")
            out.append(("," if n else "") + '"' + key.replace("\\", "\\\\").replace('"', '\\"'))
            out.append('":')
            _encode(value[key], out, depth + 1)
        out.append("}")
    elif isinstance(value, list):
        out.append("[")
        for n, item in enumerate(value):
            if n:
                out.append(",")
            _encode(item, out, depth + 1)
        out.append("]")
    else:
        raise TufError("bad-metadata", "a " + type(value).__name__ + " has no canonical JSON form")


def encode(value: object) -> bytes:
    """The canonical JSON bytes of *value* (decoded JSON: dict, list, str, int, bool, None)."""
    out: list[str] = []
    _encode(value, out, 0)
    return "".join(out).encode()
