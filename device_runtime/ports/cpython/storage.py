"""Durable key/value storage port for CPython devices: one file per key."""

from __future__ import annotations

from pathlib import Path

from device_runtime.core.errors import StorageError
from device_runtime.ports.cpython.atomic_file import write_atomic


class DirectoryStore:
    """Keys are file names in one directory; every write is atomic."""

    def __init__(self, *, directory: Path) -> None:
        self.directory = directory

    def _path(self, key: str) -> Path:
        if not key or "/" in key or key.startswith("."):
            raise StorageError(f"invalid storage key {key!r}")
        return self.directory / key

    def read(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError(f"cannot read {key!r}: {exc.strerror}") from exc

    def write(self, key: str, value: bytes) -> None:
        try:
            write_atomic(self._path(key), value)
        except OSError as exc:
            raise StorageError(f"cannot write {key!r}: {exc.strerror}") from exc
