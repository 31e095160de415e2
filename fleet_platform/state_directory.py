"""The server's state directory: private to the user the server runs as, or refused.

The directory holds the fleet CA's private key, the operator and sensor tokens
and the SQLite database. Whoever can read it can impersonate the server and
every device; whoever can put another directory in its place can make the
server trust a CA of their own. So before the server reads or writes anything
there, :func:`secure_state_directory` makes sure that only its own user can do
either:

- a missing directory is created with mode 0700;
- a symbolic link is refused: its owner can point it at a directory they
  control, now or between two starts;
- a directory owned by another user is refused: that user can read or replace
  everything in it, and chmod it back open whenever they like;
- group or other access is taken away, with a warning, since it may be how an
  older version or a careless ``mkdir`` left it;
- a directory whose parent, or any directory above it, someone else can write
  to is refused, unless that directory has the sticky bit (as ``/tmp`` does):
  whoever can write to a directory on the path can rename the state directory,
  or one above it, away and put their own in its place. The owner of a
  directory can always grant themselves that right, so each one on the path
  must belong to this user or to root. Links on the path are followed and
  judged by the directories they lead to.

The checks are made on an open descriptor of the directory itself, so that the
directory tightened is the one that was checked.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from pathlib import Path

from device_runtime.core.errors import ConfigError

log = logging.getLogger(__name__)

PRIVATE_DIRECTORY = 0o700
SHARED_BITS = 0o077
"""Group and other permission bits; none may be set on the state directory."""

ROOT_UID = 0


class UnsafeStateDirectory(ConfigError):
    """The state directory could be read or replaced by another local user.

    A configuration the operator has to fix on this machine, not something a
    device or a sensor sent, so it has no wire code of the protocol.
    """


def secure_state_directory(path: Path) -> Path:
    """Create *path* (mode 0700) or check and tighten it; its absolute path, or a refusal.

    Raises :class:`UnsafeStateDirectory` when the directory is a symbolic link,
    not a directory, owned by another user, or in a parent another user can write to.
    """
    directory = Path(os.path.abspath(path))
    _check_path_above(directory.parent, child=directory)
    # Whatever stands there already (even if it appeared a moment ago) is checked below.
    with contextlib.suppress(FileExistsError):
        directory.mkdir(mode=PRIVATE_DIRECTORY)
    try:
        descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as exc:
        raise UnsafeStateDirectory(_refusal(directory, exc)) from exc
    try:
        info = os.fstat(descriptor)
        if info.st_uid != os.geteuid():
            raise UnsafeStateDirectory(
                f"state directory {directory} belongs to user {info.st_uid}, not to this"
                f" server's user {os.geteuid()}; its owner could read and replace the keys and"
                " tokens in it, so give the server a directory of its own"
            )
        mode = stat.S_IMODE(info.st_mode)
        if mode & SHARED_BITS:
            log.warning(
                "state directory %s had mode %04o, open to other users; tightened to 0700",
                directory,
                mode,
            )
        if mode != PRIVATE_DIRECTORY:
            os.fchmod(descriptor, PRIVATE_DIRECTORY)
    finally:
        os.close(descriptor)
    return directory


def _check_path_above(parent: Path, *, child: Path) -> None:
    """Refuse a path on which someone else could replace *child* (see the module docstring)."""
    parent.mkdir(parents=True, exist_ok=True)
    real = parent.resolve(strict=True)
    for directory in (real, *real.parents):
        info = directory.stat()
        mode = stat.S_IMODE(info.st_mode)
        if info.st_uid not in (os.geteuid(), ROOT_UID):
            raise UnsafeStateDirectory(
                f"state directory {child} is inside {directory}, which belongs to user"
                f" {info.st_uid}, who could replace it; use a path whose directories all"
                " belong to this user or to root"
            )
        if mode & (stat.S_IWGRP | stat.S_IWOTH) and not mode & stat.S_ISVTX:
            raise UnsafeStateDirectory(
                f"state directory {child} is inside {directory} (mode {mode:04o}), where other"
                f" users could replace it; remove their write access (chmod go-w {directory})"
                " or set the sticky bit (chmod +t)"
            )


def _refusal(directory: Path, error: OSError) -> str:
    if directory.is_symlink():
        return (
            f"state directory {directory} is a symbolic link, which could be pointed elsewhere;"
            f" give the real directory ({directory.resolve()}) instead"
        )
    if not directory.is_dir():
        return f"state directory {directory} exists and is not a directory"
    return f"state directory {directory} cannot be opened: {error.strerror}"
