"""The failure outbox: append-only CRC'd records on flash, kept until the server has them.

A device that crashed, rebooted or was refused an update may be offline for a
week and lose power mid-write; what it must tell the fleet waits here, on its
own area of the block-device port (``core/block_device.py``'s NOR rules), not
in the MQTT client's memory. Portable: CPython and MicroPython.

The area is a ring of sectors. Each sector starts with a header: ``SFOB``, the
sector's generation (u32, one more for each sector opened), the records
dropped and the torn records found so far (u32 each, cumulative), and a CRC-32
of those 16 bytes. Records follow, each ``0x5a``, an acknowledgement byte
(0xff until the server acknowledged the record, then 0x00: clearing bits is a
write NOR allows in place, so an acknowledgement is one byte and one flush),
the payload's length (u16), the key, boot count and sequence number (u32
each), the payload, and a CRC-32 of everything but the acknowledgement byte;
big-endian. Every append and every acknowledgement is flushed before it
returns.

When the head sector is full the next one is erased and opened; its records
still unacknowledged are dropped, the oldest first, and counted in the new
header. A power cut tears at most the record being written: it fails its CRC,
the sector is sealed at it (nothing is written after bytes that are not
erased), the next append opens a new sector, and the torn record is counted,
never read. A sector whose header is torn reads as free. The same record
format goes over the wire (:func:`parse`), so the server checks the CRC the
flash wrote.
"""

import binascii
import struct

from device_runtime.core.errors import InvalidField, StorageError, TooLarge

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

    from device_runtime.core.port_types import BlockDevice

MAGIC = b"SFOB"
HEADER = 20
RECORD_HEAD = 12
OVERHEAD = RECORD_HEAD + 4
"""Bytes a record costs beyond its payload."""
MARKER = 0x5A
MAX_PAYLOAD = 1280
_U32 = 0xFFFFFFFF


def _crc(data: "bytes | memoryview", value: int = 0) -> int:
    return binascii.crc32(data, value) & _U32


def encode_record(boot: int, seq: int, payload: bytes, acked: bool = False) -> bytes:
    if len(payload) > MAX_PAYLOAD:
        raise TooLarge("an outbox record of %d bytes is over %d" % (len(payload), MAX_PAYLOAD))
    head = struct.pack(">BBHII", MARKER, 0 if acked else 0xFF, len(payload), boot, seq)
    crc = _crc(payload, _crc(head[2:], _crc(head[:1])))
    return head + payload + struct.pack(">I", crc)


def check_record(data: "bytes | memoryview", at: int, end: int) -> "tuple[int, int, int, bool]":
    """The record at *at* (not past *end*): its length, boot, seq and whether it was
    acknowledged; InvalidField names what is wrong with one that is torn or damaged."""
    if end - at < OVERHEAD:
        raise InvalidField("an outbox record at %d is cut short" % at)
    marker, ack, size, boot, seq = struct.unpack_from(">BBHII", data, at)
    if marker != MARKER:
        raise InvalidField("no outbox record at %d" % at)
    if size > MAX_PAYLOAD or at + OVERHEAD + size > end:
        raise InvalidField("the outbox record at %d claims %d bytes" % (at, size))
    crc = _crc(data[at + 2 : at + RECORD_HEAD + size], _crc(data[at : at + 1]))
    if struct.unpack_from(">I", data, at + RECORD_HEAD + size)[0] != crc:
        raise InvalidField("the outbox record at %d fails its CRC" % at)
    return OVERHEAD + size, boot, seq, ack != 0xFF


def parse(data: bytes) -> "list[tuple[int, int, bytes]]":
    """The (boot, seq, payload) of every record in an upload; the first bad one refuses it."""
    found = []
    at = 0
    view = memoryview(data)
    while at < len(data):
        size, boot, seq, _ = check_record(view, at, len(data))
        found.append((boot, seq, bytes(view[at + RECORD_HEAD : at + size - 4])))
        at += size
    return found


class Outbox:
    """Records on *area* (a block device or an :class:`Area` of two sectors or more),
    keyed (*boot*, seq): seq counts this boot's records from 1."""

    def __init__(self, area: "BlockDevice", boot: int) -> None:
        self.area = area
        self.sector = area.erase_size
        self.sectors = area.size // self.sector
        if self.sectors < 2:
            raise StorageError("an outbox needs two sectors or more")
        self.boot = boot
        self.seq = 0
        self.dropped = 0
        self.torn = 0
        self.head = -1
        self.generation = 0
        self.offset = self.sector
        self.sent: "list[tuple[int, int, int]]" = []
        self._head = bytearray(RECORD_HEAD)
        self._chunk = bytearray(64)
        self._mount()

    def _header(self, index: int) -> "tuple[int, int, int] | None":
        data = self.area.read_at(index * self.sector, HEADER)
        if data[:4] != MAGIC or struct.unpack_from(">I", data, 16)[0] != _crc(data[:16]):
            return None
        return struct.unpack_from(">III", data, 4)

    def _mount(self) -> None:
        for index in range(self.sectors):
            header = self._header(index)
            if header is not None and header[0] > self.generation:
                self.head = index
                self.generation, self.dropped, self.torn = header
        if self.head < 0:
            return
        tail = HEADER
        for index in range(self.sectors):
            for at, size, boot, seq, _ in self._records(index):
                if boot == self.boot and seq > self.seq:
                    self.seq = seq
                if index == self.head:
                    tail = at + size
        self.offset = tail
        if tail < self.sector and self.area.read_at(self.head * self.sector + tail, 1) != b"\xff":
            self.torn += 1
            self.offset = self.sector

    def _records(self, index: int) -> "Iterator[tuple[int, int, int, int, bool]]":
        """(offset, size, boot, seq, acked) of the sector's good records, up to the first
        that is not one (erased bytes or a torn record). Read through two small buffers
        the outbox keeps, so a scan allocates next to nothing: on a connected 64 KiB board
        the heap left beside TLS is fragmented."""
        if self._header(index) is None:
            return
        base = index * self.sector
        head = self._head
        chunk = self._chunk
        at = HEADER
        while at + OVERHEAD <= self.sector:
            self.area.readinto_at(base + at, head)
            marker, ack, size, boot, seq = struct.unpack(">BBHII", head)
            if marker != MARKER or size > MAX_PAYLOAD or at + OVERHEAD + size > self.sector:
                return
            crc = _crc(memoryview(head)[2:], _crc(memoryview(head)[:1]))
            done = 0
            while done < size:
                piece = memoryview(chunk)[: min(len(chunk), size - done)]
                self.area.readinto_at(base + at + RECORD_HEAD + done, piece)
                crc = _crc(piece, crc)
                done += len(piece)
            tail = memoryview(chunk)[:4]
            self.area.readinto_at(base + at + RECORD_HEAD + size, tail)
            if struct.unpack(">I", tail)[0] != crc:
                return
            yield at, OVERHEAD + size, boot, seq, ack != 0xFF
            at += OVERHEAD + size

    def _open_next(self) -> None:
        index = (self.head + 1) % self.sectors
        lost = 0
        for _, _, _, _, acked in self._records(index):
            if not acked:
                lost += 1
        base = index * self.sector
        self.area.erase(base, self.sector)
        self.area.flush()
        self.generation += 1
        self.dropped += lost
        fields = MAGIC + struct.pack(">III", self.generation, self.dropped, self.torn)
        self.area.write_at(base, fields + struct.pack(">I", _crc(fields)))
        self.area.flush()
        self.head = index
        self.offset = HEADER

    def append(self, payload: bytes) -> "tuple[int, int]":
        """Store *payload* durably under the next key, which it returns."""
        record = encode_record(self.boot, self.seq + 1, payload)
        if self.offset + len(record) > self.sector:
            self._open_next()
        self.seq += 1
        self.area.write_at(self.head * self.sector + self.offset, record)
        self.area.flush()
        self.offset += len(record)
        return self.boot, self.seq

    def _oldest_first(self) -> "list[int]":
        if self.head < 0:
            return []
        return [(self.head + 1 + n) % self.sectors for n in range(self.sectors)]

    def pending(self) -> int:
        """How many records wait for the server's acknowledgement."""
        count = 0
        for index in self._oldest_first():
            for _, _, _, _, acked in self._records(index):
                if not acked:
                    count += 1
        return count

    def batch(self, limit: int) -> bytes:
        """The oldest unacknowledged records, whole, in at most *limit* bytes (at least one
        record however large); :meth:`acknowledge` settles them."""
        self.sent = []
        total = 0
        for index in self._oldest_first():
            for at, size, boot, seq, acked in self._records(index):
                if acked:
                    continue
                if total and total + size > limit:
                    return self._gather(total)
                self.sent.append((index * self.sector + at, boot, seq))
                total += size
        return self._gather(total)

    def _gather(self, total: int) -> bytes:
        """The records of ``sent``, read into one buffer of *total* bytes."""
        out = bytearray(total)
        view = memoryview(out)
        at = 0
        for offset, _, _ in self.sent:
            self.area.readinto_at(offset, view[at : at + RECORD_HEAD])
            size = OVERHEAD + ((out[at + 2] << 8) | out[at + 3])
            self.area.readinto_at(offset + RECORD_HEAD, view[at + RECORD_HEAD : at + size])
            at += size
        return bytes(out)

    def acknowledge(self, keys: bytes) -> int:
        """Mark the records of the last batch whose keys (u32 boot, u32 seq each) the server
        settled; the rest stay pending. Returns how many were marked."""
        settled = []
        for at in range(0, len(keys) - 7, 8):
            settled.append(struct.unpack_from(">II", keys, at))
        marked = 0
        for offset, boot, seq in self.sent:
            if (boot, seq) in settled:
                self.area.write_at(offset + 1, b"\x00")
                marked += 1
        if marked:
            self.area.flush()
        self.sent = []
        return marked
