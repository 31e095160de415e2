"""Block-device port for CPython devices: a flash chip simulated by one file.

A simulated device's firmware slots are a file of the flash's size, created
erased (all 0xff). Reads and writes are positioned (``pread``/``pwrite``), and
``flush`` is an ``fsync``: once it returns, everything written before it
survives a power cut, which is the one promise ``core/block_device.py`` asks
of the medium. Ranges are checked by the core's rules, so the file never
grows or shrinks.
"""

from __future__ import annotations

import os
from pathlib import Path

from device_runtime.core.block_device import ERASED, check_erase, check_geometry, check_range
from device_runtime.core.errors import StorageError

ERASE_SIZE = 4096
"""A common NOR sector size (and the page size of the host's cache)."""


_FILL_PIECE = 1 << 20


class FileBlockDevice:
    """The flash of a simulated device, kept in *path* (created erased if absent)."""

    def __init__(self, *, path: Path, size: int, erase_size: int = ERASE_SIZE) -> None:
        check_geometry(size, erase_size)
        self.path = path
        self.size = size
        self.erase_size = erase_size
        try:
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StorageError(f"cannot open {path}: {exc.strerror}") from exc
        try:
            found = os.fstat(self._fd).st_size
            if found == 0:
                self._fill(0, size)
                self.flush()
            elif found != size:
                raise StorageError(f"{path} holds {found} bytes, not the device's {size}")
        except BaseException:
            os.close(self._fd)
            raise

    def read_at(self, offset: int, n: int) -> bytes:
        check_range(self.size, offset, n, "read")
        try:
            data = os.pread(self._fd, n, offset)
        except OSError as exc:
            raise self._failed("read", exc) from exc
        if len(data) != n:
            raise StorageError(f"{self.path} ended at offset {offset + len(data)}")
        return data

    def readinto_at(self, offset: int, buffer: bytearray | memoryview) -> None:
        check_range(self.size, offset, len(buffer), "read")
        try:
            count = os.preadv(self._fd, [buffer], offset)
        except OSError as exc:
            raise self._failed("read", exc) from exc
        if count != len(buffer):
            raise StorageError(f"{self.path} ended at offset {offset + count}")

    def write_at(self, offset: int, data: bytes | memoryview) -> None:
        check_range(self.size, offset, len(data), "write")
        view = memoryview(data)
        try:
            while view:
                written = os.pwrite(self._fd, view, offset)
                view = view[written:]
                offset += written
        except OSError as exc:
            raise self._failed("write", exc) from exc

    def erase(self, offset: int, n: int) -> None:
        check_erase(self.size, self.erase_size, offset, n)
        self._fill(offset, n)

    def flush(self) -> None:
        try:
            os.fsync(self._fd)
        except OSError as exc:
            raise self._failed("flush", exc) from exc

    def close(self) -> None:
        os.close(self._fd)

    def _fill(self, offset: int, n: int) -> None:
        # In pieces of up to 1 MiB: erasing a large slot one sector per write made the erase
        # a third of an install's time.
        piece = bytes((ERASED,)) * min(n, _FILL_PIECE)
        for start in range(offset, offset + n, len(piece) or 1):
            self.write_at(start, memoryview(piece)[: offset + n - start])

    def _failed(self, what: str, exc: OSError) -> StorageError:
        return StorageError(f"cannot {what} {self.path}: {exc.strerror}")
