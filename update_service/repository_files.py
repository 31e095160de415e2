"""Read-only access to a published TUF repository on disk.

TUF metadata and targets are static files that any HTTP server or CDN can
serve; this is the built-in one. Names come from the network, so every lookup
is confined to its directory: no traversal, no symlinks out, no hidden files.
"""

from __future__ import annotations

import re
from pathlib import Path

from device_runtime.core.errors import InvalidField

_METADATA_NAME = re.compile(r"^(?:[0-9]{1,10}\.)?[a-z][a-z0-9_-]{0,63}\.json$")
_TARGET_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")


class RepositoryFiles:
    """Resolves metadata and target names inside one repository directory."""

    def __init__(self, *, root: Path) -> None:
        self.root = root.resolve()
        self.metadata_dir = self.root / "metadata"
        self.targets_dir = self.root / "targets"

    def metadata(self, name: str) -> Path | None:
        """``root.json``, ``3.root.json``, ``timestamp.json``... or None if absent."""
        if not _METADATA_NAME.match(name):
            raise InvalidField(f"{name!r} is not a metadata file name")
        return _existing_inside(self.metadata_dir, self.metadata_dir / name)

    def target(self, path: str) -> Path | None:
        parts = path.split("/")
        if len(parts) > 8 or not all(_TARGET_PART.match(part) for part in parts):
            raise InvalidField(f"{path!r} is not a target path")
        return _existing_inside(self.targets_dir, self.targets_dir.joinpath(*parts))


def _existing_inside(directory: Path, candidate: Path) -> Path | None:
    try:
        resolved = candidate.resolve(strict=True)
    except (FileNotFoundError, NotADirectoryError):
        return None
    if not resolved.is_file() or not resolved.is_relative_to(directory.resolve()):
        return None
    return resolved
