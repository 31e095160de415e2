"""One writer at a time: an exclusive ``fcntl`` lock on a file beside the repository.

Publishing reads the live state and writes the versions that follow it; two
publishers interleaved would both write version N+1 of the same role, and
whichever timestamp lands last would silently drop the other's release. So
every writer (publish, add-hardware, key import and rotation, the server's
re-signing) takes this lock for its whole read-modify-write, and the others
wait. The kernel drops the lock when its holder dies, even by SIGKILL, so a
killed publisher never blocks the next one.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def publish_lock(path: Path) -> Iterator[None]:
    """Hold the lock at *path* (created 0600) until the block ends; waits for a holder."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)
