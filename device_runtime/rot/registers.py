"""Measurement registers in RAM: eight 32-byte values that can only be extended.

Shared by the DICE and software roots of trust. Like a TPM's PCRs they start at
zero and change only by ``SHA-256(old || digest)``, so a value states the whole
ordered list of what was measured into it; unlike PCRs they live in RAM and
start at zero again with every boot (every ``open``).
"""

import hashlib

from device_runtime.core.errors import RootOfTrustError
from device_runtime.rot import MEASUREMENT_REGISTERS

DIGEST_SIZE = 32


def check_index(index: int, limit: int, what: str) -> int:
    """*index* if it is an int in ``[0, limit)``; a bool or anything else is refused."""
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < limit:
        raise RootOfTrustError(what + " index must be an int in [0, " + str(limit - 1) + "]")
    return index


class Registers:
    """The registers as one buffer, register *i* at ``32 * i``: a root of trust is opened
    several times over in a 64 KiB heap, and eight separate bytes objects take about
    three times the RAM of their 256 bytes."""

    def __init__(self) -> None:
        self._values = bytearray(DIGEST_SIZE * MEASUREMENT_REGISTERS)

    def extend(self, index: int, digest: bytes) -> bytes:
        """Fold a SHA-256 *digest* into register *index*; returns the new value."""
        at = check_index(index, MEASUREMENT_REGISTERS, "measurement register") * DIGEST_SIZE
        if not isinstance(digest, (bytes, bytearray)) or len(digest) != DIGEST_SIZE:
            raise RootOfTrustError("a measurement is a 32-byte SHA-256 digest")
        value = hashlib.sha256(self._values[at : at + DIGEST_SIZE] + bytes(digest)).digest()
        self._values[at : at + DIGEST_SIZE] = value
        return value

    def value(self, index: int) -> bytes:
        at = check_index(index, MEASUREMENT_REGISTERS, "measurement register") * DIGEST_SIZE
        return bytes(self._values[at : at + DIGEST_SIZE])

    def all(self) -> bytes:
        """Every register, in order: what sealing binds a secret to."""
        return bytes(self._values)
