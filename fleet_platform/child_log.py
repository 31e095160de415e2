"""A child process's output file: bounded on disk, and read from its end.

The fleet server's children (the managed Mosquitto, the extra gateway
processes) write their stdout and stderr straight into a file in the state
directory, the only place they explain why they refused to start or died.
Left alone that file grows for as long as the installation lives, and a peer
that makes a child complain in a loop (a device failing its TLS handshake again
and again makes Mosquitto write an error line each time) could fill the disk
with it. A :class:`ChildLog` keeps it bounded, in one place for every child:

* at each (re)launch, a file larger than the limit becomes ``<name>.1`` (one
  previous generation, replacing the one before) and the child gets a new one;
* while the child runs, a watcher thread checks the size every
  *check_interval* seconds and, past the limit, copies the file to ``.1`` and
  truncates it in place. The child keeps writing through its own descriptor,
  opened with ``O_APPEND``, so its next line lands at the new end (the start of
  the file) rather than past a hole: lines written between the copy and the
  truncation are lost, the price of not routing a child's output through this
  process, where a stalled server would stall the broker's writes;
* reading back (why did it die?) seeks to the last :data:`TAIL_BYTES` and never
  reads the whole file into memory, however large it grew before this limit
  existed; when the file was rotated while the process ran, the lines it
  wrote before that are read from the end of ``.1``, so a child that dies
  just after a rotation still says why.

On disk a log therefore takes at most about twice the limit, plus what the
child writes in one check interval.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from pathlib import Path
from typing import BinaryIO

from device_runtime.core.errors import ConfigError

__all__ = ["DEFAULT_LOG_LIMIT", "TAIL_BYTES", "TAIL_LINES", "ChildLog"]

log = logging.getLogger(__name__)

DEFAULT_LOG_LIMIT = 10 << 20
"""Bytes a child's log may reach before it is rotated: 10 MiB, about 100,000 lines."""
DEFAULT_CHECK_INTERVAL = 1.0
"""Seconds between size checks while a child runs."""
TAIL_BYTES = 64 << 10
"""The most that is read back from the end of a log: far more than the last lines need."""
TAIL_LINES = 20
"""Lines reported when a child fails or dies."""
_COPY_CHUNK = 1 << 20


class ChildLog:
    """The output file of one supervised child, at *path*, owner-only (mode 0600).

    Use :meth:`open_for_launch` for each new process's stdout and stderr,
    :meth:`since_launch` to say why that process ended, and :meth:`close` once
    the child is stopped for good, which ends the watcher thread.
    """

    def __init__(
        self,
        path: Path,
        *,
        limit: int = DEFAULT_LOG_LIMIT,
        check_interval: float = DEFAULT_CHECK_INTERVAL,
    ) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ConfigError(f"a child log's size limit must be a positive byte count: {limit!r}")
        if not check_interval > 0:
            raise ConfigError(
                f"a child log's check interval must be positive seconds: {check_interval!r}"
            )
        self.path = Path(path)
        self.limit = limit
        self._check_interval = check_interval
        # Held while the file is rotated or the launch offsets read or moved.
        self._lock = threading.Lock()
        self._launch_offset = 0
        # Where the latest process's output starts in .1, once a rotation moved it there.
        self._previous_offset: int | None = None
        self._watching = threading.Lock()
        self._closed = threading.Event()
        self._watcher: threading.Thread | None = None

    @property
    def previous_path(self) -> Path:
        """The one older generation kept: ``<name>.1``."""
        return self.path.with_name(self.path.name + ".1")

    def open_for_launch(self) -> BinaryIO:
        """The file to give a new process as stdout and stderr, opened to append.

        A file over the limit is moved to ``.1`` first (the previous process
        has ended, so nothing writes to it any more). What the process writes
        from here on is what :meth:`since_launch` reports. Starts the watcher
        that keeps the file bounded while the process runs. Raises
        :class:`OSError` when the file cannot be rotated or opened; the caller
        says which child could not be launched.
        """
        with self._lock:
            if _size(self.path) > self.limit:
                os.replace(self.path, self.previous_path)
            output = _open_private(self.path)
            self._launch_offset = os.fstat(output.fileno()).st_size
            self._previous_offset = None
        self._watch()
        return output

    def bound(self) -> bool:
        """Rotate now, a child possibly still writing, if the file is over the limit.

        True when it rotated. The watcher calls this; so may anyone who wants
        the bound enforced at once.
        """
        with self._lock:
            if _size(self.path) <= self.limit:
                return False
            self._copy_to_previous()
            os.truncate(self.path, 0)
            self._previous_offset, self._launch_offset = self._launch_offset, 0
            return True

    def tail(self, lines: int = TAIL_LINES) -> str:
        """The last *lines* lines of the current file, whichever process wrote them."""
        return "\n".join(_read_tail(self.path, 0, _check_lines(lines)))

    def since_launch(self, lines: int = TAIL_LINES) -> str:
        """The last *lines* lines the latest process wrote: why it failed or died."""
        _check_lines(lines)
        with self._lock:
            found = _read_tail(self.path, self._launch_offset, lines)
            if len(found) < lines and self._previous_offset is not None:
                earlier = _read_tail(self.previous_path, self._previous_offset, lines - len(found))
                found = earlier + found
        return "\n".join(found)

    def close(self) -> None:
        """Stop the watcher (idempotent); a later :meth:`open_for_launch` starts it again."""
        with self._watching:
            self._closed.set()
            watcher, self._watcher = self._watcher, None
        if watcher is not None and watcher is not threading.current_thread():
            watcher.join()

    def _watch(self) -> None:
        with self._watching:
            if self._watcher is not None and self._watcher.is_alive():
                return
            self._closed.clear()
            self._watcher = threading.Thread(
                target=self._keep_bounded, name=f"bound {self.path.name}", daemon=True
            )
            self._watcher.start()

    def _keep_bounded(self) -> None:
        failing = False
        while not self._closed.wait(self._check_interval):
            try:
                self.bound()
            except OSError as exc:
                if not failing:  # once per run of failures: this must not become a flood itself
                    log.error("cannot rotate %s, it may grow without bound: %s", self.path, exc)
                failing = True
            else:
                failing = False

    def _copy_to_previous(self) -> None:
        """Copy the file to ``.1`` through a temporary file, so ``.1`` is never half written."""
        temporary = self.previous_path.with_name(self.previous_path.name + ".tmp")
        try:
            with self.path.open("rb") as source, _open_private(temporary, append=False) as copy:
                shutil.copyfileobj(source, copy, _COPY_CHUNK)
            os.replace(temporary, self.previous_path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise


def _check_lines(lines: int) -> int:
    if isinstance(lines, bool) or not isinstance(lines, int) or lines < 1:
        raise ConfigError(f"lines must be a positive number, got {lines!r}")
    return lines


def _read_tail(path: Path, offset: int, lines: int) -> list[str]:
    """The last *lines* lines of *path* from *offset* on, reading at most TAIL_BYTES of it."""
    try:
        with path.open("rb") as source:
            size = os.fstat(source.fileno()).st_size
            if offset > size:  # truncated since: what is there is all newer
                offset = 0
            start = max(offset, size - TAIL_BYTES)
            # One byte more, to tell whether the window starts inside a line.
            before = 1 if start > offset else 0
            source.seek(start - before)
            data = source.read(size - start + before)
    except OSError:
        return []
    if before and data[:1] != b"\n":
        cut = data.find(b"\n")
        data = b"" if cut < 0 else data[cut + 1 :]
    else:
        data = data[before:]
    return data.decode(errors="replace").splitlines()[-lines:]


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _open_private(path: Path, *, append: bool = True) -> BinaryIO:
    """Owner-only whatever the umask or an older file's mode: a log names every client."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    descriptor = os.open(path, flags, 0o600)
    try:
        os.fchmod(descriptor, 0o600)
    except BaseException:
        os.close(descriptor)
        raise
    return os.fdopen(descriptor, "ab" if append else "wb")
