"""Monotonic counters kept in the Store port: they only ever go up.

Shared by the DICE and software roots of trust. The eight counters are one
record, written atomically by the Store (old or new, never a torn mix), and
authenticated with HMAC-SHA256 under a key derived from the device secret, so
a record that was damaged, truncated or edited is refused with a reason
instead of being read as some other value or silently reset to zero.

What a file cannot give: a record deleted, or replaced by an older copy of
itself, reads as an older state. A TPM's NV counters (or a replay-protected
memory block) close that gap; anti-rollback on these backends is only as
strong as the device's filesystem.
"""

from device_runtime.core.errors import RootOfTrustError
from device_runtime.core.hmac_sha256 import digests_equal, hmac_sha256
from device_runtime.rot import COUNTERS
from device_runtime.rot.registers import check_index

TYPE_CHECKING = False
if TYPE_CHECKING:
    from device_runtime.core.port_types import Store

STORE_KEY = "rot-counters"
_MAGIC = b"SFC1"
_WIDTH = 8
_BODY = len(_MAGIC) + COUNTERS * _WIDTH
_RECORD = _BODY + 32
MAX_VALUE = (1 << 63) - 1


class Counters:
    def __init__(self, store: "Store", key: bytes) -> None:
        self._store = store
        self._key = key

    def _load(self) -> list[int]:
        record = self._store.read(STORE_KEY)
        if record is None:
            return [0] * COUNTERS
        if len(record) != _RECORD:
            raise RootOfTrustError(
                "counter record is damaged: " + str(len(record)) + " bytes, not " + str(_RECORD)
            )
        if record[: len(_MAGIC)] != _MAGIC:
            raise RootOfTrustError("counter record is damaged: unknown format")
        if not digests_equal(hmac_sha256(self._key, record[:_BODY]), record[_BODY:]):
            raise RootOfTrustError(
                "counter record is damaged: its MAC does not match (edited, or of another device)"
            )
        start = len(_MAGIC)
        return [
            int.from_bytes(record[start + i * _WIDTH : start + (i + 1) * _WIDTH], "big")
            for i in range(COUNTERS)
        ]

    def value(self, index: int) -> int:
        return self._load()[check_index(index, COUNTERS, "counter")]

    def increment(self, index: int) -> int:
        """Add one to counter *index*, durably, before returning the new value."""
        check_index(index, COUNTERS, "counter")
        values = self._load()
        if values[index] >= MAX_VALUE:
            raise RootOfTrustError("counter " + str(index) + " is exhausted")
        values[index] += 1
        body = _MAGIC + b"".join(v.to_bytes(_WIDTH, "big") for v in values)
        self._store.write(STORE_KEY, body + hmac_sha256(self._key, body))
        return values[index]
