"""The block-device port's rules, and an area: a window onto part of a device.

Firmware slots live on flash, which a device reaches through its block-device
port (``BlockDevice`` in ``port_types.pyi``): ``read_at`` (and
``readinto_at``, which fills a buffer the caller reuses, so that reading a
slot through allocates nothing per chunk), ``write_at``, ``erase`` and
``flush`` at byte offsets, ``size`` and ``erase_size``. The
rules are NOR flash's, so that what works on a file works on a chip: erasing
sets whole sectors of ``erase_size`` bytes to 0xff, and the code above this
port writes only to erased bytes (a write can clear bits, never set them).
``flush`` returns once everything written before it is durable; nothing is
promised about writes after the last flush when power fails, which is why
every state change in ``slots.py`` is flushed before the next one is made.

Every implementation checks ranges with :func:`check_range` and
:func:`check_erase`, so a bad offset is refused with the same reason
whatever the medium. Portable: CPython and MicroPython.
"""

from device_runtime.core.errors import StorageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from device_runtime.core.port_types import BlockDevice

ERASED = 0xFF


def check_range(size: int, offset: int, n: int, what: str) -> None:
    """Refuse *n* bytes at *offset* unless they lie within a *size*-byte device."""
    if (
        not isinstance(offset, int)
        or not isinstance(n, int)
        or offset < 0
        or n < 0
        or offset + n > size
    ):
        raise StorageError(
            "%s of %r bytes at offset %r is outside the %d-byte device" % (what, n, offset, size)
        )


def check_erase(size: int, erase_size: int, offset: int, n: int) -> None:
    """Refuse an erase that is out of range or does not cover whole sectors."""
    check_range(size, offset, n, "erase")
    if offset % erase_size or n % erase_size:
        raise StorageError(
            "erase of %d bytes at offset %d is not whole %d-byte sectors" % (n, offset, erase_size)
        )


def check_geometry(size: int, erase_size: int) -> None:
    """Refuse a device that is not a positive whole number of sectors."""
    if erase_size <= 0 or size <= 0 or size % erase_size:
        raise StorageError(
            "a device of %d bytes is not a whole number of %d-byte sectors" % (size, erase_size)
        )


class Area:
    """Bytes ``[start, start + size)`` of *device*, addressed from the area's own 0.

    A slot is an area (MCUboot's flash area): it cannot read or write outside
    itself, whatever offset a bug or a damaged header hands it.
    """

    def __init__(self, device: "BlockDevice", start: int, size: int) -> None:
        self.erase_size = device.erase_size
        check_geometry(size, self.erase_size)
        check_erase(device.size, self.erase_size, start, size)
        self.device = device
        self.start = start
        self.size = size

    def read_at(self, offset: int, n: int) -> bytes:
        check_range(self.size, offset, n, "read")
        return self.device.read_at(self.start + offset, n)

    def readinto_at(self, offset: int, buffer: "bytearray | memoryview") -> None:
        check_range(self.size, offset, len(buffer), "read")
        self.device.readinto_at(self.start + offset, buffer)

    def write_at(self, offset: int, data: "bytes | memoryview") -> None:
        check_range(self.size, offset, len(data), "write")
        self.device.write_at(self.start + offset, data)

    def erase(self, offset: int, n: int) -> None:
        check_erase(self.size, self.erase_size, offset, n)
        self.device.erase(self.start + offset, n)

    def flush(self) -> None:
        self.device.flush()
