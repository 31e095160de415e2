"""Apply a detools delta patch in constant memory, for CPython and MicroPython alike.

A delta update carries only what changed between the image in the device's current
slot and the next release. The patches are detools' *sequential* type compressed
with heatshrink (``docs/deltas.md`` says why), made on the server by
``update_service.deltas.build_delta``. detools ships a C applier for
microcontrollers; this is the same algorithm for a device that runs Python, and the
tests check it produces exactly what detools' own ``apply_patch`` does.

The format, after detools' ``apply.py``::

    header    1 byte: patch type (0, sequential) << 4 | compression (4, heatshrink)
    to_size   size: the new image's length
    heatshrink stream, its first byte (window_sz2 - 4) << 4 | (lookahead_sz2 - 3),
    decoding to:
        dfpatch_size  size: 0 (data-format patches, for ELF or ARM code, are not used)
        entries until to_size bytes are made, each
            diff_size, diff_size bytes added bytewise to the old image from its cursor
            extra_size, extra_size bytes copied as they are
            adjustment, a signed size moving the old image's cursor

A *size* is detools' variable-length integer: the first byte holds a continuation
bit (0x80), a sign bit (0x40) and six bits; each further byte a continuation bit
and seven more, least significant first.

The device streams: the patch arrives through ``read(n)``, the old image is read
through ``read_at(offset, n)`` (the old slot is random-access flash), the new image
leaves through ``write(data)`` in chunks of at most :data:`CHUNK` bytes. Memory is
the heatshrink window plus a few chunks, whatever the images' sizes. Anything
wrong, the patch being cut short, claiming more than ``max_size`` bytes, reading
outside the old image, carrying bytes past its end, is a :class:`DeltaError` naming
the reason; what was written until then is not an image. Written is not trusted
either: the caller checks the new image's length, hash and signature, as for a full
download, before it counts.
"""

from device_runtime.core import heatshrink
from device_runtime.core.errors import SevenfoldError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from device_runtime.core.port_types import ReadAt, ReadBytes, WriteChunk

PATCH_TYPE_SEQUENTIAL = 0
COMPRESSION_HEATSHRINK = 4
CHUNK = 1024
"""Bytes made and written at once; at most heatshrink.MAX_READ."""
MAX_SIZE_BYTES = 7
"""A size of more bytes than this (6 + 6 * 7 = 48 bits) is no image's."""
_ZEROS = bytes(CHUNK)


class DeltaError(SevenfoldError):
    """A delta patch is malformed, truncated, over a limit, or reads outside the old image.

    The reason says where: the offset in the new image being made, or in the patch
    while its header is read. Never a wire code: the device reports a failed update
    and keeps its old slot. It lives here, not in ``errors``, like ``ConsoleError``:
    a device that never applies a delta does not carry the class in its heap.
    """

    code = "bad-delta"


def apply_patch(
    read: "ReadBytes", read_at: "ReadAt", old_size: int, write: "WriteChunk", max_size: int
) -> int:
    """Write the image *read* turns the old one (*old_size* bytes) into; return its size.

    *max_size* is the most the caller will take (the slot, or the length the update's
    metadata promises): a patch declaring more is refused before anything is written.
    """
    source = _Source(read)
    header = source.byte("the patch header")
    if header >> 4 != PATCH_TYPE_SEQUENTIAL:
        raise DeltaError("patch type %d is not sequential (0)" % (header >> 4))
    if header & 0x0F != COMPRESSION_HEATSHRINK:
        raise DeltaError("compression %d is not heatshrink (4)" % (header & 0x0F))
    to_size = _size(source, "the new image's size", False)
    if to_size > max_size:
        raise DeltaError("the patch makes %d bytes, more than the %d allowed" % (to_size, max_size))
    if to_size == 0:
        if source.read(1):
            raise DeltaError("bytes after the end of a patch to an empty image")
        return 0
    parameters = source.byte("the heatshrink parameters")
    window_sz2 = (parameters >> 4) + 4
    lookahead_sz2 = (parameters & 15) + 3
    problem = heatshrink.parameter_problem(window_sz2, lookahead_sz2)
    if problem:
        raise DeltaError(problem)
    stream = heatshrink.HeatshrinkReader(source.read, window_sz2, lookahead_sz2)
    decoded = _Decoded(stream)
    if _size(decoded, "the data format", False) != 0:
        raise DeltaError("data-format patches (ELF or ARM code) are not supported")
    made = 0
    cursor = 0
    entries = 0
    while made < to_size:
        # Empty entries, even several in a row, are genuine (bsdiff moving the old cursor
        # twice before its next match), but bsdiff's scan moves on by at least a byte
        # between two entries, so a patch has at most to_size + 1 of them: a limit that
        # bounds the work by the image, not by the patch, and that no genuine patch meets.
        entries += 1
        if entries > to_size + 1:
            raise DeltaError(
                "at new offset %d: more than %d entries for a %d-byte image"
                % (made, to_size + 1, to_size)
            )
        length = _entry_size(decoded, "diff", made, to_size)
        if length and cursor + length > old_size:
            raise DeltaError(
                "at new offset %d: %d bytes from old offset %d are outside the old image of %d"
                % (made, length, cursor, old_size)
            )
        end = made + length
        while made < end:
            n = min(CHUNK, end - made)
            diff = decoded.exactly(n, made)
            old = read_at(cursor, n)
            if len(old) != n:
                raise DeltaError(
                    "the old image gave %d bytes at %d, not %d" % (len(old), cursor, n)
                )
            write(_added(diff, old, n))
            cursor += n
            made += n
        extra = _entry_size(decoded, "extra", made, to_size)
        end = made + extra
        while made < end:
            n = min(CHUNK, end - made)
            write(decoded.exactly(n, made))
            made += n
        cursor += _size(decoded, "an adjustment", True)
        if cursor < 0:
            raise DeltaError(
                "at new offset %d: the old image's cursor moves to %d" % (made, cursor)
            )
    if not decoded.stream.finished():
        raise DeltaError(
            "data after the %d bytes of the new image, at compressed byte %d"
            % (to_size, decoded.stream.consumed)
        )
    return to_size


def _added(diff: bytes, old: bytes, n: int) -> bytes:
    """Old plus diff, bytewise modulo 256; most diff chunks are all zeros."""
    if diff == (_ZEROS if n == CHUNK else bytes(n)):
        return old
    new = bytearray(old)
    for i in range(n):
        if diff[i]:
            new[i] = (new[i] + diff[i]) & 0xFF
    return bytes(new)


def _entry_size(decoded: "_Decoded", what: str, made: int, to_size: int) -> int:
    length = _size(decoded, "a " + what + " size", False)
    if made + length > to_size:
        raise DeltaError(
            "at new offset %d: %d bytes of %s data run past the image's %d"
            % (made, length, what, to_size)
        )
    return length


def _size(reader: "_Source | _Decoded", what: str, signed: bool) -> int:
    """One detools size, read a byte at a time; *what* it is goes into the reasons."""
    byte = reader.byte(what)
    negative = byte & 0x40
    value = byte & 0x3F
    shift = 6
    count = 1
    while byte & 0x80:
        count += 1
        if count > MAX_SIZE_BYTES:
            raise DeltaError(what + " is longer than " + str(MAX_SIZE_BYTES) + " bytes")
        byte = reader.byte(what)
        value |= (byte & 0x7F) << shift
        shift += 7
    if negative:
        if not signed:
            raise DeltaError(what + " is negative")
        value = -value
    return value


class _Source:
    """The raw patch: its header bytes one at a time, then the stream for the decoder."""

    def __init__(self, read: "ReadBytes") -> None:
        self._read = read
        self.offset = 0

    def byte(self, what: str) -> int:
        got = self.read(1)
        if not got:
            raise DeltaError("the patch ends at byte %d, in %s" % (self.offset, what))
        return got[0]

    def read(self, n: int) -> "bytes | memoryview":
        got = self._read(n)
        if len(got) > n:
            raise DeltaError("the patch source gave %d bytes where %d were asked" % (len(got), n))
        self.offset += len(got)
        return got


class _Decoded:
    """The decoded patch, with the reasons its end gives when it comes too soon."""

    def __init__(self, stream: "heatshrink.HeatshrinkReader") -> None:
        self.stream = stream

    def byte(self, what: str) -> int:
        got = self.stream.read(1)
        if not got:
            raise DeltaError(
                "the patch ends after %d compressed bytes, in %s" % (self.stream.consumed, what)
            )
        return got[0]

    def exactly(self, n: int, made: int) -> bytes:
        got = self.stream.read(n)
        if len(got) != n:
            raise DeltaError(
                "the patch ends after %d compressed bytes, at new offset %d"
                % (self.stream.consumed, made + len(got))
            )
        return got
