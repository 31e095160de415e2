"""A streaming heatshrink decoder in constant memory, for CPython and MicroPython alike.

heatshrink (LZSS, by Scott Vokes) is the compression detools puts inside the delta
patches it makes for microcontrollers; its decoder needs nothing but a window of the
last ``2**window_sz2`` output bytes, which is why a 64 KiB device can afford it where
LZMA, bzip2 or zstd (with a window the size of the old image) could not. MicroPython
has no heatshrink, so it is decoded here; ``heatshrink2`` (the C library's binding)
is the reference the tests compare with.

The stream is a sequence of bits, most significant first: a 1 is followed by a
literal byte (8 bits); a 0 by a back-reference, ``window_sz2`` bits of distance - 1,
then ``lookahead_sz2`` bits of length - 1, copying from the output already made (the
window starts as zeros, as the C decoder's buffer does). Every bit sequence is a
valid stream: an operation the input ends in the middle of is dropped, as the C
decoder drops it (:meth:`HeatshrinkReader.finished` tells a clean end from that).
Only the parameters can be wrong, and those are bounded (:func:`parameter_problem`)
so that a hostile stream cannot make the device allocate more than ``buffer_size``
says.

Output is made into one bytearray laid out as ``[window | one read | room for one
copy]``: copies are slice assignments (the interpreter's memmove), not byte loops,
and once the buffer fills, the last window's worth (and what is not read yet, less
than one read) is moved back to its start. With the device's largest window that
is 7 KiB, allocated once.
"""

TYPE_CHECKING = False
if TYPE_CHECKING:
    from device_runtime.core.port_types import ReadBytes

MIN_WINDOW_SZ2 = 4
MAX_WINDOW_SZ2 = 12
"""A 4 KiB window at most: the device's limit, not the format's (which allows 2**19)."""
MIN_LOOKAHEAD_SZ2 = 3
INPUT_CHUNK = 256
"""Bytes asked of the input at once."""
MAX_READ = 1024
"""The most one :meth:`HeatshrinkReader.read` hands out."""


def buffer_size(window_sz2: int, lookahead_sz2: int) -> int:
    """Bytes of output buffer a decoder with these parameters holds."""
    return max(1 << window_sz2, MAX_READ) + MAX_READ + (1 << lookahead_sz2)


def parameter_problem(window_sz2: int, lookahead_sz2: int) -> str:
    """Why the C library, or the device's window limit, refuses these parameters ("" if not)."""
    if not MIN_WINDOW_SZ2 <= window_sz2 <= MAX_WINDOW_SZ2:
        return "heatshrink window of 2**%d bytes is outside 2**%d..2**%d" % (
            window_sz2, MIN_WINDOW_SZ2, MAX_WINDOW_SZ2,
        )  # fmt: skip
    if not MIN_LOOKAHEAD_SZ2 <= lookahead_sz2 < window_sz2:
        return "heatshrink lookahead of 2**%d bytes is outside 2**%d..2**%d" % (
            lookahead_sz2, MIN_LOOKAHEAD_SZ2, window_sz2 - 1,
        )  # fmt: skip
    return ""


class HeatshrinkReader:
    """Decoded bytes of a heatshrink stream, read on demand from ``read(n)``."""

    def __init__(self, read: "ReadBytes", window_sz2: int, lookahead_sz2: int) -> None:
        problem = parameter_problem(window_sz2, lookahead_sz2)
        if problem:
            raise ValueError(problem)  # the caller checks what came from outside first
        self._read = read
        self._window = 1 << window_sz2
        self._index_bits = window_sz2
        self._count_bits = lookahead_sz2
        self._buf = bytearray(buffer_size(window_sz2, lookahead_sz2))
        self._view = memoryview(self._buf)
        self._slide_at = len(self._buf) - (1 << lookahead_sz2)
        self._pos = self._window
        self._out = self._window
        self._input: "bytes | memoryview" = b""
        self._input_pos = 0
        self._acc = 0
        self._nbits = 0
        self.consumed = 0
        """Bytes of input taken so far: where an error was found, for its reason."""
        self.ended = False
        """The input has ended; whatever is pending is all there will be."""

    def read(self, n: int) -> bytes:
        """Up to *n* (at most :data:`MAX_READ`) decoded bytes; fewer only at the end."""
        if not 0 <= n <= MAX_READ:
            raise ValueError("read size must be in 0.." + str(MAX_READ))
        if self._pos - self._out < n and not self.ended:
            self._fill(n)
        start = self._out
        taken = min(n, self._pos - start)
        self._out = start + taken
        return bytes(self._view[start : start + taken])

    def finished(self) -> bool:
        """Whether the stream ends here: nothing decoded is left over, and all that
        remains of the input is the zero padding of its last byte, as the encoder
        leaves it. Stricter than the C decoder, which ignores what follows."""
        if self._pos != self._out or self._nbits >= 8 or self._acc:
            return False
        if self._input_pos < len(self._input):
            return False
        return not self._read(1)

    def _bits(self, count: int) -> int:
        """The next *count* bits as a number, or -1 once the input has ended."""
        while self._nbits < count:
            if self._input_pos >= len(self._input):
                self._input = self._read(INPUT_CHUNK)
                self._input_pos = 0
                if not self._input:
                    self.ended = True
                    return -1
            self._acc = (self._acc << 8) | self._input[self._input_pos]
            self._input_pos += 1
            self.consumed += 1
            self._nbits += 8
        self._nbits -= count
        value = self._acc >> self._nbits
        self._acc &= (1 << self._nbits) - 1
        return value

    def _fill(self, n: int) -> None:
        buf = self._buf
        view = self._view
        pos = self._pos
        while pos - self._out < n:
            if pos > self._slide_at:
                pos = self._slide(pos)
            tag = self._bits(1)
            if tag < 0:
                break
            if tag:
                literal = self._bits(8)
                if literal < 0:
                    break
                buf[pos] = literal
                pos += 1
                continue
            index = self._bits(self._index_bits)
            if index < 0:
                break
            count = self._bits(self._count_bits)
            if count < 0:
                break
            count += 1
            source = pos - index - 1
            while count:
                # Copying from a source that overlaps the destination repeats its period:
                # each slice copies at most what already exists, which doubles each time.
                step = min(count, pos - source)
                buf[pos : pos + step] = view[source : source + step]
                pos += step
                count -= step
        self._pos = pos

    def _slide(self, pos: int) -> int:
        """Move the window and anything not yet read back to the buffer's start."""
        start = min(self._out, pos - self._window)
        kept = pos - start
        self._buf[0:kept] = self._buf[start:pos]
        self._out -= start
        return kept
