"""A/B firmware slots, each ending in a trailer that tells the bootloader what it may boot.

Two slots of equal size share one block device (:func:`slot_pair`); the image
runs from whichever slot the bootloader picks, as in MCUboot's direct-xip
mode, so an update never moves an image and the running one is never
touched. A slot's last erase sector belongs to its trailer; the image may
fill the rest (``capacity``). The trailer keeps MCUboot's fields and values,
at MCUboot's offsets from the slot's end (BOOT_MAX_ALIGN 8: each field alone
in an 8-byte unit, so each one is written once between erases), and adds two
of its own below them::

    end - 72  verdict      why the image's trial failed (the image writes it)
    end - 64  generation   u32, then its complement: which install is newest
    end - 56..end - 32     MCUboot's swap fields: unused here, left erased
    end - 32  copy_done    0x01: the bootloader began the image's one trial
    end - 24  image_ok     0x01: the image confirmed itself
    end - 16  magic        MCUboot's 16-byte trailer magic, written last

From them a slot is in one of four states (``docs/updates.md``): EMPTY (no
magic, or a damaged generation) never boots; PENDING (image_ok and copy_done
erased) gets exactly one trial; TRIAL (copy_done written, image_ok not 0x01)
is a trial that began and was never confirmed, which the bootloader, seeing
it again, knows has failed; CONFIRMED (image_ok 0x01). A torn write reads as
the safer state: image_ok counts only as exactly 0x01, copy_done as written
unless it is exactly erased, and the magic, written after the rest and
flushed, vouches for everything below it. Portable: CPython and MicroPython.
"""

import struct

from device_runtime.core.block_device import ERASED, Area
from device_runtime.core.errors import StorageError
from device_runtime.core.signed_image import CHUNK_SIZE

TYPE_CHECKING = False
if TYPE_CHECKING:
    from device_runtime.core.port_types import BlockDevice, ReadBytes

MAGIC = bytes.fromhex("77c295f360d2ef7f3552500f2cb67980")
"""MCUboot's ``boot_img_magic`` for BOOT_MAX_ALIGN 8."""
SET = 0x01
TRAILER_SIZE = 72
VERDICT = 72
GENERATION = 64
COPY_DONE = 32
IMAGE_OK = 24
MAGIC_END = 16
"""Where each field starts, counted back from the end of the slot."""
_GENERATION_FORMAT = "<II"
_COMPLEMENT = 0xFFFFFFFF

EMPTY = "empty"
PENDING = "pending"
TRIAL = "trial"
CONFIRMED = "confirmed"

HEALTH_FAILED = 1
DEADLINE_PASSED = 2
VERDICTS = {
    ERASED: "it was not confirmed before the next reset (a crash, a watchdog reset or a power"
    " cut during its trial)",
    HEALTH_FAILED: "its health check failed",
    DEADLINE_PASSED: "its health check did not pass within the deadline",
}
"""What a failed trial's verdict byte says; erased is the bootloader's own finding."""


class Trailer:
    """A slot's trailer as read in one go: its state, generation and verdict."""

    def __init__(self, raw: bytes) -> None:
        generation, complement = struct.unpack(_GENERATION_FORMAT, raw[8:16])
        self.generation = generation
        self.verdict = raw[0]
        image_ok = raw[TRAILER_SIZE - IMAGE_OK]
        copy_done = raw[TRAILER_SIZE - COPY_DONE]
        if raw[TRAILER_SIZE - MAGIC_END :] != MAGIC or generation ^ complement != _COMPLEMENT:
            self.state = EMPTY
        elif image_ok == SET:
            self.state = CONFIRMED
        elif image_ok == ERASED and copy_done == ERASED:
            self.state = PENDING
        else:
            self.state = TRIAL

    def failure(self) -> str:
        """Why a trial in this slot failed, in words."""
        known = VERDICTS.get(self.verdict)
        return known if known is not None else "its trial ended with verdict 0x%02x" % self.verdict


class Slot:
    """One slot: an area of the device, its image at offset 0 and its trailer at the end."""

    def __init__(self, index: int, area: Area, buffer_size: int = CHUNK_SIZE) -> None:
        if area.size < 2 * area.erase_size or area.erase_size < TRAILER_SIZE:
            raise StorageError("a slot of %d bytes in %d-byte sectors has no room for an image"
                               " and a trailer sector" % (area.size, area.erase_size))  # fmt: skip
        self.index = index
        self.name = "AB"[index]
        self.area = area
        self.capacity = area.size - area.erase_size
        self.buffer_size = buffer_size
        self._buffer: "memoryview | None" = None

    def trailer(self) -> Trailer:
        return Trailer(self.area.read_at(self.area.size - TRAILER_SIZE, TRAILER_SIZE))

    def reader(self) -> "ReadBytes":
        """``read(n)`` over the image area for the image verifier: each piece is a view of the
        slot's one buffer (*buffer_size* bytes, made on first use), valid until the next read
        (the verifier hashes or copies it at once), so that checking a slot allocates nothing
        per chunk on a small heap. One reader of a slot at a time."""
        position = [0]

        def read(n: int) -> memoryview:
            buffer = self._buffer
            if buffer is None:
                buffer = self._buffer = memoryview(bytearray(self.buffer_size))
            view = buffer[: min(n, self.buffer_size, self.capacity - position[0])]
            self.area.readinto_at(position[0], view)
            position[0] += len(view)
            return view

        return read

    def erase(self, start: int = 0) -> None:
        """Erase the trailer, then the image area from *start*: no half-written image is
        ever named by a trailer."""
        self.area.erase(self.capacity, self.area.erase_size)
        self.area.flush()
        self.area.erase(start, self.capacity - start)
        self.area.flush()

    def mark_pending(self, generation: int) -> None:
        """Offer the image for one trial as install *generation*: the generation, then the
        magic that makes it count."""
        self._require((EMPTY,), "mark pending")
        self._mark(GENERATION, _generation_field(generation))
        self._mark(MAGIC_END, MAGIC)

    def provision(self, generation: int) -> None:
        """The factory's image: confirmed from the start, as no older image could take over."""
        self._require((EMPTY,), "provision")
        self._mark(GENERATION, _generation_field(generation))
        self._mark(COPY_DONE, bytes((SET,)))
        self._mark(IMAGE_OK, bytes((SET,)))
        self._mark(MAGIC_END, MAGIC)

    def begin_trial(self) -> None:
        self._require((PENDING,), "begin a trial")
        self._mark(COPY_DONE, bytes((SET,)))

    def confirm(self) -> None:
        """Make the image on trial permanent (refused once its trial was failed)."""
        if self._require((TRIAL,), "confirm").verdict != ERASED:
            raise StorageError("slot " + self.name + "'s trial failed: it cannot be confirmed")
        self._mark(IMAGE_OK, bytes((SET,)))

    def fail_trial(self, verdict: int) -> None:
        """Record why the image on trial failed, for the next boot to report."""
        if verdict not in VERDICTS or verdict == ERASED:
            raise StorageError("verdict %r is not one of %r" % (verdict, sorted(VERDICTS)[:-1]))
        self._require((TRIAL,), "fail a trial")
        self._mark(VERDICT, bytes((verdict,)))

    def _require(self, states: "tuple[str, ...]", action: str) -> Trailer:
        trailer = self.trailer()
        if trailer.state not in states:
            raise StorageError("cannot %s slot %s: it is %s" % (action, self.name, trailer.state))
        return trailer

    def _mark(self, back: int, value: bytes) -> None:
        """Write one trailer field and flush, refusing what flash cannot do without an erase:
        a bit cleared that *value* needs set (a field already holding something else)."""
        offset = self.area.size - back
        old = self.area.read_at(offset, len(value))
        for i in range(len(value)):
            if old[i] & value[i] != value[i]:
                raise StorageError("slot %s's trailer at end - %d holds %s, which cannot"
                                   " become %s without an erase" % (self.name, back, old.hex(),
                                                                    value.hex()))  # fmt: skip
        self.area.write_at(offset, value)
        self.area.flush()


def _generation_field(generation: int) -> bytes:
    return struct.pack(_GENERATION_FORMAT, generation, generation ^ _COMPLEMENT)


def slot_pair(device: "BlockDevice", buffer_size: int = CHUNK_SIZE) -> "list[Slot]":
    """Slots A and B: the two halves of *device*, each a whole number of sectors, read
    *buffer_size* bytes at a time (less for a heap with no 4 KiB to spare)."""
    half = device.size // 2 // device.erase_size * device.erase_size
    return [
        Slot(0, Area(device, 0, half), buffer_size),
        Slot(1, Area(device, half, half), buffer_size),
    ]
