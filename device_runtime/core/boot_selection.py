"""The bootloader's choice of slot: a pending image gets exactly one trial, else the newest
confirmed image boots, and nothing boots that fails :class:`ImageTrust`.

MCUboot's direct-xip revert, with an install generation instead of the image
version deciding which slot is newest (a security fix may ship as a lower
version with a higher security counter; the generation says what was
installed last). The slots are taken newest first:

* PENDING and newest: verified, then its trial is begun (copy_done written and
  flushed) before it boots, so that the next boot knows it has run.
* TRIAL: a trial that began and was not confirmed has failed; it is passed
  over, now and at every boot until the slot is installed again.
* CONFIRMED: verified; the anti-rollback counter is raised to its security
  counter (finishing a climb a power cut interrupted), then it boots.

Whenever the newest slot is not the one booted, ``Boot.reverted`` and
``Boot.revert_reason`` say which it was and why. The reason is found again
from the slots at every boot (the trial's verdict is in its trailer; a
refused image refuses again), so it survives power cuts and lasts until the
slot is next installed. If no slot
may boot, an :class:`ImageError` lists each refusal and nothing boots. Only
copy_done and the counter are ever written here. Portable: CPython and
MicroPython.
"""

from device_runtime.core.signed_image import ImageError
from device_runtime.core.slots import CONFIRMED, EMPTY, PENDING, TRIAL

TYPE_CHECKING = False
if TYPE_CHECKING:
    from device_runtime.core.image_trust import ImageTrust
    from device_runtime.core.signed_image import VerifiedImage
    from device_runtime.core.slots import Slot


class Boot:
    """What the bootloader hands the image it starts: its slot, its verified image, whether
    this is its trial and, when the newest slot was passed over, which (``reverted``) and
    why (``revert_reason``), for the update agent to report; both None otherwise."""

    def __init__(
        self,
        slot: int,
        image: "VerifiedImage",
        trial: bool,
        reverted: "int | None",
        revert_reason: "str | None",
    ) -> None:
        self.slot = slot
        self.image = image
        self.trial = trial
        self.reverted = reverted
        self.revert_reason = revert_reason


def select(slots: "list[Slot]", trust: "ImageTrust") -> Boot:
    """Pick the slot to boot, begin its trial if it is pending, and say what was passed over."""
    trailers = [slot.trailer() for slot in slots]
    newest = sorted(
        (i for i in range(len(slots)) if trailers[i].state != EMPTY),
        key=lambda i: -trailers[i].generation,
    )
    refusals = []
    reverted = None
    reason = None
    for rank, index in enumerate(newest):
        slot = slots[index]
        trailer = trailers[index]
        why = None
        image = None
        if trailer.state == TRIAL:
            why = "its trial failed: " + trailer.failure()
        elif trailer.state == PENDING and rank:
            why = "pending, but older than the slot it would replace"
        else:
            try:
                image = trust.verify(slot.reader(), slot.capacity)
            except ImageError as exc:
                why = "its image was refused: " + exc.reason
        if image is None:
            refusals.append("slot " + slot.name + ": " + str(why))
            if not rank:
                reverted = index
                reason = why
            continue
        if trailer.state == CONFIRMED:
            trust.advance(image.security_counter)
        else:
            slot.begin_trial()
        return Boot(index, image, trailer.state != CONFIRMED, reverted, reason)
    raise ImageError(
        "no slot holds an image that may boot: " + ("; ".join(refusals) or "all empty")
    )
