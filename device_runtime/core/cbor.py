"""CBOR (RFC 8949) for the subset the Sevenfold protocol speaks, on CPython and MicroPython.

The same module runs on a microcontroller with a 64 KiB heap and on the server,
so it imports nothing and allocates only what the input already proves it holds.

Encoding is the core deterministic encoding of RFC 8949 section 4.2.1: every
integer, length and tag number in its shortest form, definite lengths only, map
keys sorted bytewise by their encoded form. Two sides that build the same value
therefore produce the same bytes, which is what signatures and hashes need.

Decoding is strict about everything that could make one message mean two
things or cost more than it is worth:

* a head in longer than shortest form is rejected: no encoder we talk to
  produces one, and refusing it keeps one encoding per integer and length;
* map keys may come in any order (cbor2's ``canonical=True`` sorts length
  first, the RFC 7049 rule, and must still be readable), but a key may appear
  once only, and must be an integer, a text string or a byte string;
* one map never mixes byte-string and text keys: MicroPython compares the two
  with a console warning ("Comparison between bytes and str") on every lookup
  that meets both, so a peer could otherwise spam a device's console, and no
  protocol message needs both;
* indefinite lengths, floats, ``undefined`` and the other simple values are not
  part of the protocol and are rejected;
* text must be valid UTF-8 by RFC 3629 (no overlong forms, no surrogates),
  checked here because MicroPython's own decoder lets those through.

Every way the input can be wrong ends in :class:`DecodeError` or, for limits,
:class:`TooLarge`, each naming the offset where the problem was found. Running
out of heap or stack while decoding is a limit too: a ``MemoryError`` or the
interpreter's recursion limit becomes :class:`TooLarge`, never a bare crash.
"""

from device_runtime.core.errors import DecodeError, TooLarge

UINT64_MAX = 0xFFFFFFFFFFFFFFFF

MAX_DEPTH_CEILING = 64
"""Largest ``max_depth`` a caller may ask for.

The decoder recurses once per array or tag level and twice per map level, so
64 levels cost at most 128 frames: well inside CPython's default recursion
limit of 1000 whatever the caller's own stack holds. MicroPython's limit
depends on the board's C stack; hitting it is reported as TooLarge.
"""

DEFAULT_MAX_DEPTH = 16
DEFAULT_MAX_ITEMS = 4096
DEFAULT_MAX_TOTAL_ITEMS = 65536

LONG_BYTES = 64
"""Byte strings from this length on are joined into the output, never copied into a buffer."""
_MAJOR_UNSIGNED = 0
_MAJOR_NEGATIVE = 1
_MAJOR_BYTES = 2
_MAJOR_TEXT = 3
_MAJOR_ARRAY = 4
_MAJOR_MAP = 5
_MAJOR_TAG = 6
_MAJOR_SIMPLE = 7

_FALSE = 20
_TRUE = 21
_NULL = 22
_UNDEFINED = 23
_BREAK = 31


class Tag:
    """A tagged data item, such as COSE_Sign1 (tag 18) or a CWT (tag 61)."""

    __slots__ = ("tag", "value")

    def __init__(self, tag: int, value: object) -> None:
        self.tag = tag
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Tag) and self.tag == other.tag and self.value == other.value

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __repr__(self) -> str:
        return "Tag(%d, %r)" % (self.tag, self.value)


def dumps(obj: object) -> bytes:
    """Encode *obj* deterministically.

    Values the protocol has no use for (floats, sets, integers beyond 64 bits,
    non-string map keys) raise TypeError or ValueError: producing them is a bug
    in the caller, not something a peer did.
    """
    out = bytearray()
    done: "list[bytes]" = []
    _encode(out, obj, done)
    done.append(bytes(out))
    return b"".join(done)


def _head(out: bytearray, major: int, n: int) -> None:
    if n < 24:
        out.append((major << 5) | n)
    elif n < 0x100:
        out.append((major << 5) | 24)
        out.append(n)
    elif n < 0x10000:
        out.append((major << 5) | 25)
        out.extend(n.to_bytes(2, "big"))
    elif n < 0x100000000:
        out.append((major << 5) | 26)
        out.extend(n.to_bytes(4, "big"))
    else:
        out.append((major << 5) | 27)
        out.extend(n.to_bytes(8, "big"))


def _encode(out: bytearray, obj: object, done: "list[bytes]") -> None:
    # *out* is the buffer being written, *done* what came before it: a long byte string goes
    # to *done* as it is rather than into the buffer, so its one copy is in the joined output.
    if obj is None:
        out.append(0xF6)
    elif obj is True:
        out.append(0xF5)
    elif obj is False:
        out.append(0xF4)
    elif isinstance(obj, int):
        if obj >= 0:
            if obj > UINT64_MAX:
                raise ValueError("integer above 2**64-1 has no CBOR encoding here")
            _head(out, _MAJOR_UNSIGNED, obj)
        else:
            if obj < -1 - UINT64_MAX:
                raise ValueError("integer below -2**64 has no CBOR encoding here")
            _head(out, _MAJOR_NEGATIVE, -1 - obj)
    elif isinstance(obj, (bytes, bytearray)):
        _head(out, _MAJOR_BYTES, len(obj))
        if len(obj) < LONG_BYTES:
            out.extend(obj)
        else:
            done.extend((bytes(out), bytes(obj)))
            out[:] = b""
    elif isinstance(obj, str):
        raw = obj.encode("utf-8")
        _head(out, _MAJOR_TEXT, len(raw))
        out.extend(raw)
    elif isinstance(obj, (list, tuple)):
        _head(out, _MAJOR_ARRAY, len(obj))
        for item in obj:
            _encode(out, item, done)
    elif isinstance(obj, dict):
        _encode_map(out, obj, done)
    elif isinstance(obj, Tag):
        tag = obj.tag
        if not isinstance(tag, int) or isinstance(tag, bool) or tag < 0 or tag > UINT64_MAX:
            raise ValueError("tag number must be an integer from 0 to 2**64-1")
        _head(out, _MAJOR_TAG, tag)
        _encode(out, obj.value, done)
    else:
        raise TypeError("cannot encode a value of type " + type(obj).__name__)


def _encode_map(out: bytearray, obj: dict[object, object], done: "list[bytes]") -> None:
    entries = []
    text_keys = False
    bytes_keys = False
    for key, value in obj.items():
        if isinstance(key, bool) or not isinstance(key, (int, str, bytes)):
            raise TypeError("map keys must be int, str or bytes, not " + type(key).__name__)
        text_keys = text_keys or isinstance(key, str)
        bytes_keys = bytes_keys or isinstance(key, bytes)
        if text_keys and bytes_keys:
            raise ValueError("a map may not mix byte-string and text keys")
        entries.append((dumps(key), value))
    entries.sort(key=_encoded_key)
    _head(out, _MAJOR_MAP, len(entries))
    for encoded_key, value in entries:
        out.extend(encoded_key)
        _encode(out, value, done)


def _encoded_key(entry: tuple[bytes, object]) -> bytes:
    return entry[0]


def loads(
    data: "bytes | bytearray | memoryview",
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_items: int = DEFAULT_MAX_ITEMS,
    max_total_items: int = DEFAULT_MAX_TOTAL_ITEMS,
) -> object:
    """Decode exactly one item from *data*, rejecting trailing bytes.

    *max_depth* bounds how many arrays, maps and tags may nest (at most
    :data:`MAX_DEPTH_CEILING`); *max_items* bounds the entries of any one array
    or map (a key with its value is one entry); *max_total_items* bounds the
    data items of the whole message (the top-level item, every array element,
    every map key and every map value, every tagged item), checked as each
    container's head claims them, because many small containers cost a small
    device far more heap than their few bytes of input suggest. Strings are
    bounded by the input itself: every claimed length is checked against the
    bytes left before anything is allocated for it, so a hostile header costs
    nothing and a short input is reported as truncated.

    A bytearray or memoryview is read in place, never copied whole: on a
    device the input may be most of what the heap has left.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError("CBOR input must be bytes, not " + type(data).__name__)
    if getattr(data, "itemsize", 1) != 1:
        raise TypeError("CBOR input must be a buffer of single bytes")
    if not isinstance(max_depth, int) or not 0 <= max_depth <= MAX_DEPTH_CEILING:
        raise ValueError("max_depth must be an int from 0 to %d" % MAX_DEPTH_CEILING)
    size = len(data)
    reader = None
    try:
        reader = _Reader(memoryview(data), max_depth, max_items, max_total_items)
        reader.spend(1, 0)
        obj = reader.item(0)
    except MemoryError:
        raise TooLarge("message does not fit in memory (%d bytes)" % size) from None
    except RuntimeError as exc:
        # CPython's RecursionError is a RuntimeError; MicroPython raises a plain
        # RuntimeError with the same words when its stack check trips.
        if reader is None or "maximum recursion depth" not in str(exc):
            raise
        raise TooLarge(
            "nesting at offset %d is deeper than the stack allows" % reader.pos
        ) from None
    if reader.pos != size:
        raise DecodeError(
            "trailing bytes: %d after the item that ends at offset %d"
            % (size - reader.pos, reader.pos)
        )
    return obj


class _Reader:
    """Walks the input once, keeping the offset every error message reports."""

    def __init__(
        self, data: memoryview, max_depth: int, max_items: int, max_total_items: int
    ) -> None:
        self.data = data
        self.pos = 0
        self.max_depth = max_depth
        self.max_items = max_items
        self.max_total_items = max_total_items
        self.total_items = 0

    def spend(self, count: int, start: int) -> None:
        """Charge *count* more data items, claimed by the head at *start*, to the budget."""
        self.total_items += count
        if self.total_items > self.max_total_items:
            raise TooLarge(
                "data item budget of %d exceeded by the head at offset %d"
                % (self.max_total_items, start)
            )

    def item(self, depth: int) -> object:
        data = self.data
        start = self.pos
        if start >= len(data):
            raise DecodeError("truncated at offset %d: expected a data item" % start)
        initial = data[start]
        self.pos = start + 1
        major = initial >> 5
        info = initial & 0x1F
        if major == _MAJOR_SIMPLE:
            return self._simple(info, start)
        arg = self._argument(major, info, start)
        if major == _MAJOR_UNSIGNED:
            return arg
        if major == _MAJOR_NEGATIVE:
            return -1 - arg
        if major == _MAJOR_BYTES:
            return bytes(self._string(arg, start))
        if major == _MAJOR_TEXT:
            return _text(self._string(arg, start), start)
        depth += 1
        if depth > self.max_depth:
            raise TooLarge("nesting deeper than %d at offset %d" % (self.max_depth, start))
        if major == _MAJOR_ARRAY:
            self._check_count(arg, 1, "array", start)
            self.spend(arg, start)
            # Sized once: growing by append would leave a trail of outgrown
            # copies on a small heap.
            items: "list[object]" = [None] * arg
            for i in range(arg):
                items[i] = self.item(depth)
            return items
        if major == _MAJOR_MAP:
            return self._map(arg, depth, start)
        self.spend(1, start)
        return Tag(arg, self.item(depth))

    def _argument(self, major: int, info: int, start: int) -> int:
        if info < 24:
            return info
        if info > 27:
            if info == _BREAK and major in (_MAJOR_BYTES, _MAJOR_TEXT, _MAJOR_ARRAY, _MAJOR_MAP):
                raise DecodeError("indefinite length not allowed at offset %d" % start)
            raise DecodeError("reserved additional info %d at offset %d" % (info, start))
        size = 1 << (info - 24)
        pos = self.pos
        if len(self.data) - pos < size:
            raise DecodeError(
                "truncated at offset %d: the head needs %d more bytes, %d left"
                % (start, size, len(self.data) - pos)
            )
        arg = int.from_bytes(self.data[pos : pos + size], "big")
        self.pos = pos + size
        if arg < (24 if size == 1 else 1 << (4 * size)):
            raise DecodeError("non-shortest encoding of %d at offset %d" % (arg, start))
        return arg

    def _check_count(self, count: int, min_bytes_each: int, what: str, start: int) -> None:
        if count > self.max_items:
            raise TooLarge(
                "%s at offset %d claims %d entries, limit %d" % (what, start, count, self.max_items)
            )
        left = len(self.data) - self.pos
        if count * min_bytes_each > left:
            raise DecodeError(
                "truncated at offset %d: %s claims %d entries but only %d bytes are left"
                % (start, what, count, left)
            )

    def _string(self, length: int, start: int) -> memoryview:
        """The string's bytes in place; the caller copies or decodes them once."""
        pos = self.pos
        left = len(self.data) - pos
        if length > left:
            raise DecodeError(
                "truncated at offset %d: string claims %d bytes but only %d are left"
                % (start, length, left)
            )
        self.pos = pos + length
        return self.data[pos : pos + length]

    def _map(self, count: int, depth: int, start: int) -> dict[object, object]:
        self._check_count(count, 2, "map", start)
        self.spend(2 * count, start)
        data = self.data
        result = {}
        string_keys = -1
        for _ in range(count):
            key_at = self.pos
            if key_at < len(data):
                key_major = data[key_at] >> 5
                if key_major > _MAJOR_TEXT:
                    raise DecodeError(
                        "map key at offset %d has major type %d; only int, text and bytes keys"
                        % (key_at, key_major)
                    )
                if key_major >= _MAJOR_BYTES:
                    if string_keys < 0:
                        string_keys = key_major
                    elif key_major != string_keys:
                        raise DecodeError(
                            "map at offset %d mixes byte-string and text keys (key at offset %d)"
                            % (start, key_at)
                        )
            key = self.item(depth)
            if key in result:
                raise DecodeError("duplicate map key at offset %d" % key_at)
            result[key] = self.item(depth)
        return result

    def _simple(self, info: int, start: int) -> object:
        if info == _FALSE:
            return False
        if info == _TRUE:
            return True
        if info == _NULL:
            return None
        if info == _UNDEFINED:
            raise DecodeError("undefined at offset %d is not part of the protocol" % start)
        if 25 <= info <= 27:
            raise DecodeError("float at offset %d: floats are not part of the protocol" % start)
        if info == 24:
            if self.pos >= len(self.data):
                raise DecodeError("truncated at offset %d: simple value byte missing" % start)
            value = self.data[self.pos]
            raise DecodeError("simple value %d at offset %d is not allowed" % (value, start))
        if info < 20:
            raise DecodeError("simple value %d at offset %d is not allowed" % (info, start))
        if info == _BREAK:
            raise DecodeError(
                "unexpected break at offset %d (indefinite length not allowed)" % start
            )
        raise DecodeError("reserved additional info %d at offset %d" % (info, start))


def _text(raw: memoryview, start: int) -> str:
    # RFC 3629 first: MicroPython's decoder would let surrogates and overlong
    # forms through. Then str() decodes straight from the input buffer.
    if raw and max(raw) > 0x7F and not _strict_utf8(raw):
        raise DecodeError("invalid UTF-8 in text string at offset %d" % start)
    try:
        return str(raw, "utf-8")
    except UnicodeError:
        raise DecodeError("invalid UTF-8 in text string at offset %d" % start) from None


def _strict_utf8(raw: memoryview) -> bool:
    """RFC 3629 well-formedness, which MicroPython's decoder does not fully check."""
    i = 0
    n = len(raw)
    while i < n:
        b = raw[i]
        if b < 0x80:
            i += 1
            continue
        if 0xC2 <= b <= 0xDF:
            follow, low, high = 1, 0x80, 0xBF
        elif 0xE0 <= b <= 0xEF:
            follow = 2
            low = 0xA0 if b == 0xE0 else 0x80
            high = 0x9F if b == 0xED else 0xBF
        elif 0xF0 <= b <= 0xF4:
            follow = 3
            low = 0x90 if b == 0xF0 else 0x80
            high = 0x8F if b == 0xF4 else 0xBF
        else:
            return False
        if i + follow >= n:
            return False
        second = raw[i + 1]
        if second < low or second > high:
            return False
        for j in range(i + 2, i + 1 + follow):
            if raw[j] & 0xC0 != 0x80:
                return False
        i += 1 + follow
    return True
