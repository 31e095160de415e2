"""The durable record of a download in progress: which target, and how much of it is safe.

A download into the inactive slot outlives a reboot: the slot keeps what was
flushed, and this record says what it is, the target's name, length and
SHA-256 as the signed metadata gave them, and the offset up to which the slot
holds it durably (``slot_install``'s ``progress``, sector-aligned). It is one
value in the storage port, replaced atomically at each durable offset, with a
CRC-32 over the rest: a record that is torn, damaged or from another format
reads as no record, with the reason, and the download starts again from 0,
never from bytes the record cannot vouch for. Portable: CPython and
MicroPython.

Layout: ``SFDL`` and format 1, length (u32), offset (u32), SHA-256 (32 bytes),
the name's length (u16) and UTF-8 bytes, then the CRC-32 (u32) of all before it,
all big-endian.
"""

import binascii
import struct

TYPE_CHECKING = False
if TYPE_CHECKING:
    from device_runtime.core.port_types import Store

RECORD_KEY = "download"
MAGIC = b"SFDL\x01"
MAX_NAME = 1024
_HEAD = ">II32sH"
_HEAD_SIZE = 42


class DownloadRecord:
    """Target *name* (*length* bytes, *sha256*) is durable in the slot up to *offset*."""

    def __init__(self, name: str, length: int, sha256: bytes, offset: int) -> None:
        self.name = name
        self.length = length
        self.sha256 = sha256
        self.offset = offset

    def encode(self) -> bytes:
        name = self.name.encode()
        if len(name) > MAX_NAME:
            raise ValueError("a target name of %d bytes is over %d" % (len(name), MAX_NAME))
        body = MAGIC + struct.pack(_HEAD, self.length, self.offset, self.sha256, len(name)) + name
        return body + struct.pack(">I", binascii.crc32(body) & 0xFFFFFFFF)

    def same_target(self, name: str, length: int, sha256: bytes) -> bool:
        return self.name == name and self.length == length and self.sha256 == sha256


def decode(data: bytes) -> "DownloadRecord | str":
    """The record *data* holds, or why it holds none."""
    fixed = len(MAGIC) + _HEAD_SIZE
    if len(data) < fixed + 4:
        return "the download record is %d bytes, too short (torn?)" % len(data)
    if data[: len(MAGIC)] != MAGIC:
        return "the download record is not in format 1"
    (crc,) = struct.unpack(">I", data[-4:])
    if binascii.crc32(data[:-4]) & 0xFFFFFFFF != crc:
        return "the download record fails its CRC (torn or damaged)"
    length, offset, sha256, size = struct.unpack(_HEAD, data[len(MAGIC) : fixed])
    if fixed + size + 4 != len(data):
        return "the download record's name does not fill it"
    try:
        name = data[fixed : fixed + size].decode()
    except UnicodeError:
        return "the download record's name is not UTF-8"
    if not 0 <= offset <= length:
        return "the download record's offset %d is past its length %d" % (offset, length)
    return DownloadRecord(name, length, sha256, offset)


def load(store: "Store", key: str = RECORD_KEY) -> "DownloadRecord | str":
    """The stored record, "" if there is none, or the reason the stored bytes are not one."""
    data = store.read(key)
    if not data:
        return ""
    return decode(data)


def save(store: "Store", record: DownloadRecord, key: str = RECORD_KEY) -> None:
    store.write(key, record.encode())


def clear(store: "Store", key: str = RECORD_KEY) -> None:
    """No download in progress (the storage port has no delete: an empty value is none)."""
    store.write(key, b"")
