"""Durable key/value storage port for MicroPython filesystems.

A write goes to a temporary file that is renamed over the key, so a power cut
leaves either the old or the new value: littlefs commits a closed file and a
rename copy-on-write, and ports whose ``os`` has ``sync`` (the filesystems
that cache) are synced before the rename. The unix port has neither
``fsync`` nor ``sync``: there the new value is as durable as the host
kernel's page cache makes it, which is why the simulated devices that test
power cuts run the CPython port (``atomic_file``, with fsync).
"""

import os

from device_runtime.core.errors import StorageError

_ENOENT = 2
_EEXIST = 17


class DirectoryStore:
    def __init__(self, *, directory: str) -> None:
        self.directory = directory
        try:
            os.mkdir(directory)
        except OSError as exc:
            if exc.errno != _EEXIST:
                raise StorageError("cannot create " + repr(directory) + ": " + str(exc)) from exc

    def _path(self, key: str) -> str:
        if not key or "/" in key or key[0] == ".":
            raise StorageError("invalid storage key " + repr(key))
        return self.directory + "/" + key

    def read(self, key: str) -> "bytes | None":
        try:
            with open(self._path(key), "rb") as handle:
                return handle.read()
        except OSError as exc:
            if exc.errno == _ENOENT:
                return None
            raise StorageError("cannot read " + repr(key) + ": " + str(exc)) from exc

    def write(self, key: str, value: bytes) -> None:
        path = self._path(key)
        temporary = path + ".tmp"
        try:
            with open(temporary, "wb") as handle:
                handle.write(value)
                handle.flush()
            sync = getattr(os, "sync", None)
            if sync is not None:
                sync()
            os.rename(temporary, path)
        except OSError as exc:
            raise StorageError("cannot write " + repr(key) + ": " + str(exc)) from exc
