"""Delta patches built by hand, for tests that run on CPython and under MicroPython.

detools is not there under MicroPython, so the hostile cases are assembled here from
the format's parts: detools sizes, and a heatshrink stream of literals only (every
byte a 1 bit and eight data bits), which any heatshrink decoder must read back.
"""

import gc
import io

from device_runtime.core.delta_patch import DeltaError, apply_patch

PORTABLE_HELPER = True

OLD = b"".join(b"sensor %d reads %d.%d C\n" % (i, 20 + i % 7, i % 10) for i in range(48))
NEW = OLD.replace(b"sensor 17 reads", b"sensor 17 read").replace(b"sensor 30 ", b"sensor 30 now ")
PATCH = bytes.fromhex("048911888062e0c18d31701d3410250496076eb7dde839515d98c000009eac18")
"""``update_service.deltas.build_delta(OLD, NEW)``, checked against detools on CPython."""

SEQUENTIAL_HEATSHRINK = 0x04
LITERAL_PARAMETERS = (8, 4)


def size(value):
    """*value* as a detools size: sign and six bits first, then seven bits a byte."""
    magnitude = -value if value < 0 else value
    first = magnitude & 0x3F
    if value < 0:
        first |= 0x40
    magnitude >>= 6
    out = bytearray([first])
    while magnitude:
        out[-1] |= 0x80
        out.append(magnitude & 0x7F)
        magnitude >>= 7
    return bytes(out)


def literals(data, window_sz2=LITERAL_PARAMETERS[0], lookahead_sz2=LITERAL_PARAMETERS[1]):
    """A heatshrink stream of *data* as literals, with detools' parameter byte before it."""
    out = bytearray(1 + (9 * len(data) + 7) // 8)  # one allocation: a small heap fragments
    out[0] = (window_sz2 - 4) << 4 | (lookahead_sz2 - 3)
    at = 1
    bits = 0
    count = 0
    for byte in data:
        bits = (bits << 9) | 0x100 | byte
        count += 9
        while count >= 8:
            count -= 8
            out[at] = (bits >> count) & 0xFF
            at += 1
            bits &= (1 << count) - 1
    if count:
        out[at] = (bits << (8 - count)) & 0xFF
    return out


def entries(*parts, data_format=0):
    """The decoded body: the data-format size, then ``(diff, extra, adjustment)`` entries."""
    body = size(data_format)
    for diff, extra, adjustment in parts:
        body += size(len(diff)) + diff + size(len(extra)) + extra + size(adjustment)
    return body


def patch(to_size, body, header=SEQUENTIAL_HEATSHRINK):
    return bytes([header]) + size(to_size) + literals(body)


def applied(old, data, max_size=1 << 20, read_size=None):
    """The new image, written chunk by chunk; *read_size* caps what each ``read`` returns."""
    source = io.BytesIO(data)
    chunks = []

    def read(n):
        return source.read(n if read_size is None else min(n, read_size))

    def read_at(offset, n):
        return old[offset : offset + n]

    gc.collect()  # a 64 KiB heap has room for the decoder's window, not for garbage besides
    made = apply_patch(read, read_at, len(old), chunks.append, max_size)
    image = b"".join(chunks)
    assert made == len(image)
    return image


def refused(old, data, max_size=1 << 20, read_at=None):
    """The reason :func:`apply_patch` refuses *data* with."""
    source = io.BytesIO(data)
    if read_at is None:

        def read_at(offset, n):
            return old[offset : offset + n]

    gc.collect()
    try:
        apply_patch(source.read, read_at, len(old), lambda chunk: None, max_size)
    except DeltaError as exc:
        return exc.reason
    raise AssertionError("accepted")
