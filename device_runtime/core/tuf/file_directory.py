"""Metadata and targets as files in a directory: written aside, renamed into place once trusted.

A download streams to ``<name>.part`` (checked as it arrives, parsed from the
file, never held whole in memory) and is renamed over ``<name>`` only after
every check passed, so the directory never holds an untrusted file under a
trusted name, and a power cut leaves the old file or the new one. Names are
quoted (``names.file_name``): a role called ``../x`` stays inside. Only
``open``, ``os.rename`` and ``os.remove``, which both interpreters have.
"""

import os

from device_runtime.core.tuf.names import file_name

TYPE_CHECKING = False
if TYPE_CHECKING:
    from device_runtime.core.port_types import BinaryFile


class FileDirectory:
    """*directory* must exist; *name* is a role's file name or a target path."""

    def __init__(self, directory: str) -> None:
        self.directory = directory

    def path(self, name: str) -> str:
        """Where the trusted file *name* lives."""
        return self.directory + "/" + file_name(name)

    def open_verified(self, name: str) -> "BinaryFile | None":
        """The trusted file *name* for reading, or None if there is none."""
        try:
            return open(self.path(name), "rb")
        except OSError:
            return None

    def open_partial(self, name: str) -> "BinaryFile":
        """A new, empty file to stream *name* into before it is checked."""
        return open(self.path(name) + ".part", "wb")

    def reopen_partial(self, name: str) -> "BinaryFile":
        """The partial file of *name*, complete now, for reading."""
        return open(self.path(name) + ".part", "rb")

    def commit(self, name: str) -> None:
        """Put the checked partial file of *name* in place of the trusted one."""
        os.rename(self.path(name) + ".part", self.path(name))

    def discard(self, name: str) -> None:
        """Remove the partial file of *name*, which did not check."""
        try:
            os.remove(self.path(name) + ".part")
        except OSError:
            pass
