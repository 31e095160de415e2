"""Block-device port for MicroPython: a flash chip simulated by one open file.

The same device as the CPython port (``ports/cpython/block_device.py``): a
file of the flash's size, created erased (all 0xff), read and written in
place. ``flush`` flushes the file and, where ``os`` has ``sync`` (the
filesystems that cache), syncs; the unix port has neither ``fsync`` nor
``sync``, so there a flush is as durable as the host's page cache, which is
why the power-cut tests run the CPython port. Erasing writes 0xff a piece at
a time, so that erasing a slot never needs a sector's worth of heap.
"""

import os

from device_runtime.core.block_device import ERASED, check_erase, check_geometry, check_range
from device_runtime.core.errors import StorageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from io import BufferedRandom

ERASE_SIZE = 4096
_ENOENT = 2
_PIECE = 512


class FileBlockDevice:
    def __init__(self, *, path: str, size: int, erase_size: int = ERASE_SIZE) -> None:
        check_geometry(size, erase_size)
        self.path = path
        self.size = size
        self.erase_size = erase_size
        self._file: "BufferedRandom"
        try:
            self._file = open(path, "r+b")
        except OSError as exc:
            if exc.errno != _ENOENT:
                raise self._failed("open", exc) from exc
            self._file = self._create()
        found = self._file.seek(0, 2)
        if found != size:
            self._file.close()
            raise StorageError(path + " holds " + str(found) + " bytes, not the device's " +
                               str(size))  # fmt: skip

    def _create(self) -> "BufferedRandom":
        try:
            with open(self.path, "wb") as handle:
                piece = bytes((ERASED,)) * _PIECE
                for _ in range(self.size // _PIECE):
                    handle.write(piece)
                handle.write(piece[: self.size % _PIECE])
            return open(self.path, "r+b")
        except OSError as exc:
            raise self._failed("create", exc) from exc

    def read_at(self, offset: int, n: int) -> bytes:
        check_range(self.size, offset, n, "read")
        try:
            self._file.seek(offset)
            data = self._file.read(n)
        except OSError as exc:
            raise self._failed("read", exc) from exc
        if len(data) != n:
            raise StorageError(self.path + " ended at offset " + str(offset + len(data)))
        return data

    def readinto_at(self, offset: int, buffer: "bytearray | memoryview") -> None:
        check_range(self.size, offset, len(buffer), "read")
        try:
            self._file.seek(offset)
            count = self._file.readinto(buffer)
        except OSError as exc:
            raise self._failed("read", exc) from exc
        if count != len(buffer):
            raise StorageError(self.path + " ended at offset " + str(offset + (count or 0)))

    def write_at(self, offset: int, data: "bytes | memoryview") -> None:
        check_range(self.size, offset, len(data), "write")
        try:
            self._file.seek(offset)
            self._file.write(data)
        except OSError as exc:
            raise self._failed("write", exc) from exc

    def erase(self, offset: int, n: int) -> None:
        check_erase(self.size, self.erase_size, offset, n)
        piece = memoryview(bytes((ERASED,)) * _PIECE)
        for start in range(offset, offset + n, _PIECE):
            self.write_at(start, piece[: offset + n - start])

    def flush(self) -> None:
        try:
            self._file.flush()
            sync = getattr(os, "sync", None)
            if sync is not None:
                sync()
        except OSError as exc:
            raise self._failed("flush", exc) from exc

    def close(self) -> None:
        self._file.close()

    def _failed(self, what: str, exc: OSError) -> StorageError:
        return StorageError("cannot " + what + " " + self.path + ": " + str(exc))
