"""Memory-mapped access to a capture file.

Mapping the file lets the readers slice records without a read call per
packet, which matters at a million packets, while the kernel pages the file in
and out so memory stays bounded whatever the file size.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def mapped(path: str | Path) -> Iterator[bytes | mmap.mmap]:
    """The file's bytes; empty files (which mmap refuses) map to ``b""``."""
    with open(path, "rb") as f:
        size = f.seek(0, 2)
        if size == 0:
            yield b""
            return
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as view:
            yield view
