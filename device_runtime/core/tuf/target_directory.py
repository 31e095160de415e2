"""Downloaded targets as files in one directory: written aside, renamed into place when checked.

A target is streamed to ``<name>.part`` and renamed over ``<name>`` only
after its length and hashes matched, so the directory never holds an
unverified file under a target's name. Only ``open``, ``os.rename`` and
``os.remove``, which both interpreters have.
"""

import os

from device_runtime.core.tuf.names import file_name

TYPE_CHECKING = False
if TYPE_CHECKING:
    from device_runtime.core.port_types import BinaryFile


class TargetDirectory:
    """*directory* must exist; names are target paths, stored under their quoted form."""

    def __init__(self, directory: str) -> None:
        self.directory = directory

    def path(self, name: str) -> str:
        """Where the verified target *name* lives."""
        return self.directory + "/" + file_name(name)

    def open_verified(self, name: str) -> "BinaryFile | None":
        """The stored file of *name* for reading, or None if there is none."""
        try:
            return open(self.path(name), "rb")
        except OSError:
            return None

    def open_partial(self, name: str) -> "BinaryFile":
        """A new, empty file to stream *name* into before it is checked."""
        return open(self.path(name) + ".part", "wb")

    def commit(self, name: str) -> None:
        """Put the checked partial file of *name* in place."""
        os.rename(self.path(name) + ".part", self.path(name))

    def discard(self, name: str) -> None:
        """Remove the partial file of *name*, which did not check."""
        try:
            os.remove(self.path(name) + ".part")
        except OSError:
            pass
