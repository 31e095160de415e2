"""OLPC canonical JSON, as securesystemslib encodes it: the bytes TUF signatures cover.

Keys sorted by code point, no whitespace, strings with only ``\\`` and ``"``
escaped and everything else as raw UTF-8, integers, booleans and null; floats
have no canonical form and are refused. The bytes are never held whole: they
go piece by piece into a hash (every TUF signature scheme verifies a digest of
them), so a document costs no second copy of itself on a small heap.
"""

from device_runtime.core.tuf.error import TufError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from device_runtime.core.port_types import Hasher

MAX_DEPTH = 32


def _string(text: str) -> bytes:
    try:
        return ('"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"').encode()
    except UnicodeError:  # a lone surrogate ("\ud800"), which JSON can spell and UTF-8 cannot
        raise TufError("bad-metadata", "metadata holds a string that is not Unicode text") from None


def encode(value: object, sink: "Hasher", depth: int = 0) -> None:
    """Feed the canonical JSON of *value* (decoded JSON) to ``sink.update``."""
    if depth > MAX_DEPTH:
        raise TufError("bad-metadata", "metadata nests deeper than " + str(MAX_DEPTH))
    if isinstance(value, str):
        sink.update(_string(value))
    elif value is True or value is False or value is None:
        sink.update(b"true" if value is True else b"false" if value is False else b"null")
    elif isinstance(value, int):
        sink.update(str(value).encode())
    elif isinstance(value, dict):
        separator = b"{"
        for key in sorted(value):
            if not isinstance(key, str):
                raise TufError("bad-metadata", "object key is not a string")
            sink.update(separator)
            sink.update(_string(key))
            sink.update(b":")
            encode(value[key], sink, depth + 1)
            separator = b","
        sink.update(b"}" if separator == b"," else b"{}")
    elif isinstance(value, list):
        separator = b"["
        for item in value:
            sink.update(separator)
            encode(item, sink, depth + 1)
            separator = b","
        sink.update(b"]" if separator == b"," else b"[]")
    else:
        raise TufError("bad-metadata", "a " + type(value).__name__ + " has no canonical JSON form")


class Collector:
    """A sink that keeps the bytes, for tests and tools that want them whole."""

    def __init__(self) -> None:
        self.data = bytearray()

    def update(self, data: bytes) -> None:
        self.data += data
