"""The length and hashes a parent role names for a file, checked as the file streams by.

Metadata files are checked against the ``length``/``hashes`` their timestamp or
snapshot lists (when it lists them), targets against their target entry. Every
listed hash must match, and a hash this client does not know fails the file:
it cannot be checked. SHA-512 is loaded only when a file is listed by it.
"""

import binascii
import hashlib

from device_runtime.core.tuf.error import TufError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from device_runtime.core.port_types import Digest


class FileCheck:
    """Feed a file to ``update`` in pieces, then ``finish`` raises ``mismatch`` unless it fits."""

    def __init__(self, info: "dict[str, object]", what: str) -> None:
        self.what = what
        self.length = info.get("length")
        self.size = 0
        self.hashers: list[tuple[str, str, Digest]] = []
        hashes = info.get("hashes")
        for algorithm, expected in (hashes if isinstance(hashes, dict) else {}).items():
            if algorithm == "sha256":
                self.hashers.append((algorithm, expected, hashlib.sha256()))
            elif algorithm == "sha512":
                from device_runtime.core import sha512

                self.hashers.append((algorithm, expected, sha512.new()))
            else:
                raise TufError("mismatch", what + " is listed by unknown hash " + algorithm[:20])

    def update(self, data: "bytes | bytearray") -> None:
        self.size += len(data)
        for _, _, hasher in self.hashers:
            hasher.update(data)

    def finish(self) -> None:
        if self.length is not None and self.size != self.length:
            raise TufError(
                "mismatch", self.what + " is " + str(self.size) + " bytes, not " + str(self.length)
            )
        for algorithm, expected, hasher in self.hashers:
            if binascii.hexlify(hasher.digest()).decode() != expected:
                raise TufError("mismatch", self.what + " does not match its " + algorithm + " hash")


def check_bytes(info: "dict[str, object]", data: "bytes | bytearray", what: str) -> None:
    """*data* must have the ``length`` and every one of the ``hashes`` in *info*."""
    check = FileCheck(info, what)
    check.update(data)
    check.finish()
