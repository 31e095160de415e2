"""Installing an update: the image streamed into the inactive slot, checked on the way, then
offered to the bootloader for one trial.

:func:`install` takes a ``read(n)`` source (the download) and what the
signed TUF targets metadata says of the file: its length, SHA-256 and
hardware. Before a byte is written it refuses hardware the target is not
for, a length the slot cannot hold, and an update while the running image
is itself on trial (its fallback is the slot that would be overwritten).
It then erases the slot (trailer first) and passes the stream to the image
verifier through a reader that writes each piece to the slot and hashes it
for TUF: one pass, one chunk in memory, whatever the image's size. The
image must end exactly at the TUF length, hash to the TUF SHA-256, verify
under the device's image key and not be a rollback (:class:`ImageTrust`).
Nothing is pending yet: :func:`mark_pending` does that, with the next
generation. A failed install leaves the slot EMPTY, which nothing boots.

Downloads that resume across reboots: every :data:`FLUSH_EVERY` bytes the slot
is flushed and ``progress(offset)`` told the sector-aligned offset that is
now durable; an install called again with ``resume_from`` that offset erases
the slot from there, reads the bytes before it back from the slot (they are
hashed and verified like the rest) and takes the rest from the source, which
must start at that offset (an HTTP Range request; ``download.py``).

An image that something else makes in the slot, a delta applied from the
running slot (``delta_update.py``), is checked by :func:`install_written`
with the same refusals and the same reader, every byte read back from the
slot: whatever wrote it is not trusted. Portable: CPython and MicroPython.
"""

import hashlib

from device_runtime.core.errors import StorageError
from device_runtime.core.hmac_sha256 import digests_equal
from device_runtime.core.signed_image import ImageError
from device_runtime.core.slots import CONFIRMED, EMPTY

TYPE_CHECKING = False
if TYPE_CHECKING:
    from device_runtime.core.image_trust import ImageTrust
    from device_runtime.core.port_types import FillSlot, OnProgress, ReadBytes
    from device_runtime.core.signed_image import VerifiedImage
    from device_runtime.core.slots import Slot

FLUSH_EVERY = 64 * 1024
MAX_GENERATION = 0xFFFFFFFE


class _SlotWriter:
    """The reader the image verifier consumes: the slot's own bytes up to *resume_from*, then
    the source's, each source piece written to the slot; all hashed for TUF on the way."""

    def __init__(
        self,
        slot: "Slot",
        read: "ReadBytes",
        limit: int,
        resume_from: int,
        progress: "OnProgress | None",
    ) -> None:
        self.slot = slot
        self.read = read
        self.limit = limit
        self.resume_from = resume_from
        self.progress = progress
        self.replay = slot.reader()
        self.sha = hashlib.sha256()
        self.offset = 0
        self.durable = resume_from

    def __call__(self, n: int) -> "bytes | memoryview":
        n = min(n, self.limit - self.offset)
        if n <= 0:
            return b""
        area = self.slot.area
        data: "bytes | memoryview"
        if self.offset < self.resume_from:
            data = self.replay(min(n, self.resume_from - self.offset))
        else:
            data = self.read(n)
            if len(data) > n:
                raise ImageError("the source returned %d bytes for %d" % (len(data), n))
            area.write_at(self.offset, data)
        self.sha.update(data)
        self.offset += len(data)
        if self.offset - self.durable >= FLUSH_EVERY:
            area.flush()
            self.durable = self.offset - self.offset % area.erase_size
            if self.progress is not None:
                self.progress(self.durable)
        return data


def inactive_slot(slots: "list[Slot]", running: int) -> "Slot":
    """The slot an update may overwrite: the other one, and only while the running image is
    confirmed (during a trial the other slot is the way back)."""
    if running not in (0, 1):
        raise StorageError("there is no slot %r to run from" % (running,))
    state = slots[running].trailer().state
    if state != CONFIRMED:
        raise StorageError("slot %s runs an image that is %s: confirm it, or let the next"
                           " boot revert it, before installing" % (slots[running].name,
                                                                   state))  # fmt: skip
    return slots[1 - running]


def install(
    slots: "list[Slot]",
    running: int,
    read: "ReadBytes",
    trust: "ImageTrust",
    *,
    length: int,
    sha256: bytes,
    hardware: "list[str] | tuple[str, ...]",
    model: str,
    resume_from: int = 0,
    progress: "OnProgress | None" = None,
) -> "VerifiedImage":
    """Stream the update from ``read(n)`` into the inactive slot and check it; see the module.

    *length* and *sha256* are the target's in the signed TUF targets metadata, *hardware*
    the models that metadata says it is for (its custom field: the image format names no
    model, so this is where a device refuses another model's firmware), *model* this
    device's own.
    """
    slot = _target_slot(slots, running, length, sha256, hardware, model)
    if resume_from:
        if resume_from % slot.area.erase_size or not 0 < resume_from < length:
            raise StorageError("cannot resume at offset %r of a %d-byte target"
                               % (resume_from, length))  # fmt: skip
        if slot.trailer().state != EMPTY:
            raise StorageError("cannot resume into slot %s: it holds a marked image" % slot.name)
    slot.erase(resume_from)
    return _checked(slot, _SlotWriter(slot, read, length, resume_from, progress), trust, sha256)


def install_written(
    slots: "list[Slot]",
    running: int,
    fill: "FillSlot",
    trust: "ImageTrust",
    *,
    length: int,
    sha256: bytes,
    hardware: "list[str] | tuple[str, ...]",
    model: str,
) -> "VerifiedImage":
    """An update that something else makes in the inactive slot (a delta applied from the
    running one), checked exactly as :func:`install` checks a download: the same refusals
    before a byte is written, the slot erased, ``fill(area)`` writing the image from offset
    0, then every byte read back, hashed and verified against what TUF said of the target."""
    slot = _target_slot(slots, running, length, sha256, hardware, model)
    slot.erase()
    fill(slot.area)
    slot.area.flush()
    return _checked(slot, _SlotWriter(slot, _nothing, length, length, None), trust, sha256)


def _nothing(n: int) -> bytes:
    return b""


def _target_slot(
    slots: "list[Slot]",
    running: int,
    length: int,
    sha256: bytes,
    hardware: "list[str] | tuple[str, ...]",
    model: str,
) -> "Slot":
    """The slot the target may go to, after what can be refused before a byte is written."""
    if not isinstance(length, int) or isinstance(length, bool) or length <= 0:
        raise ImageError("target length %r is not a positive integer" % (length,))
    if not isinstance(sha256, bytes) or len(sha256) != 32:
        raise ImageError("target SHA-256 is not 32 bytes")
    if not isinstance(hardware, (list, tuple)) or model not in hardware:
        raise ImageError("the update is for %r, not this device's %r" % (hardware, model))
    slot = inactive_slot(slots, running)
    if length > slot.capacity:
        raise ImageError("the target's %d bytes are more than slot %s holds (%d)"
                         % (length, slot.name, slot.capacity))  # fmt: skip
    return slot


def _checked(
    slot: "Slot", writer: _SlotWriter, trust: "ImageTrust", sha256: bytes
) -> "VerifiedImage":
    image = trust.verify(writer, slot.capacity)
    slot.area.flush()
    if writer.offset != writer.limit:
        raise ImageError("the image ends at offset %d; the target is %d bytes"
                         % (writer.offset, writer.limit))  # fmt: skip
    if not digests_equal(writer.sha.digest(), sha256):
        raise ImageError("the %d bytes do not hash to the target's SHA-256" % writer.limit)
    return image


def mark_pending(slots: "list[Slot]", running: int) -> None:
    """Offer what :func:`install` put in the inactive slot to the next boot, for exactly one
    trial, as the generation after the running image's."""
    generation = slots[running].trailer().generation + 1
    if generation > MAX_GENERATION:
        raise StorageError("slot %s has used up its generations" % slots[running].name)
    inactive_slot(slots, running).mark_pending(generation)


def provision(slots: "list[Slot]", read: "ReadBytes", trust: "ImageTrust") -> "VerifiedImage":
    """The factory's first image, into slot A, confirmed: there is nothing to revert to."""
    slot = slots[0]
    slot.erase()
    writer = _SlotWriter(slot, read, slot.capacity, 0, None)
    image = trust.verify(writer, slot.capacity)
    slot.area.flush()
    slot.provision(1)
    return image
