"""An update by delta where one is offered, the full image where not or where the delta fails.

The release service publishes, beside each image, deltas from the model's
recent releases, each naming the digest of the image it applies to
(``docs/deltas.md``). :func:`install_update` takes the delta when it applies
to the image this device runs (its measured digest) and is smaller than the
image, and when no download of the full image is under way (a record of one
means the delta was tried before, or is no longer offered: going back to it
would lose the full download's progress on every reboot). It streams the
delta from the network through the applier (``delta_patch``), reading the
running slot at random and writing the inactive one in order
(``slot_install.install_written``), then checks the result exactly as a full
download: the image target's length and SHA-256, the signature, the security
counter; the delta's own length and SHA-256 are checked too, once it has
been read. Nothing of the delta is kept across a reboot (its decoder's state
is not durable); it is small, and a failed one costs only the fallback.

Any delta failure, its download (after the retries), a patch the applier
refuses, a result that does not hash to the image target or does not verify,
falls back to the full image (``download.Downloader.install``, resumable),
and the reason is in ``Update.delta_failure``. Portable: CPython and
MicroPython.
"""

import hashlib

from device_runtime.core import delta_patch
from device_runtime.core.delta_patch import DeltaError
from device_runtime.core.download import DownloadError, RangedSource
from device_runtime.core.hmac_sha256 import digests_equal
from device_runtime.core.signed_image import ImageError
from device_runtime.core.slot_install import install_written

TYPE_CHECKING = False
if TYPE_CHECKING:
    from device_runtime.core.block_device import Area
    from device_runtime.core.download import Downloader, Target
    from device_runtime.core.image_trust import ImageTrust
    from device_runtime.core.signed_image import VerifiedImage
    from device_runtime.core.slots import Slot

FULL = "full"
DELTA = "delta"


class Update:
    """The installed (not yet pending) image; how it came (:data:`DELTA` or :data:`FULL`);
    why a delta that was tried failed (None if none failed)."""

    def __init__(self, image: "VerifiedImage", via: str, delta_failure: "str | None") -> None:
        self.image = image
        self.via = via
        self.delta_failure = delta_failure


def install_update(
    downloader: "Downloader",
    slots: "list[Slot]",
    running: int,
    running_image: "VerifiedImage",
    trust: "ImageTrust",
    image: "Target",
    delta: "Target | None",
    model: str,
) -> Update:
    """Install *image* into the slot the device does not run (*running* runs
    *running_image*, as boot selection found it), by *delta* when it applies."""
    failure = None
    if delta is not None and _applies(downloader, slots[1 - running], running_image, image, delta):
        try:
            made = apply_delta(downloader, slots, running, running_image, trust, image, delta,
                               model)  # fmt: skip
            return Update(made, DELTA, None)
        except (DeltaError, DownloadError, ImageError) as exc:
            failure = exc.explain()
    return Update(downloader.install(slots, running, trust, image, model), FULL, failure)


def _applies(
    downloader: "Downloader",
    slot: "Slot",
    running_image: "VerifiedImage",
    image: "Target",
    delta: "Target",
) -> bool:
    """The delta is from the running image, smaller, and no full download is under way."""
    if delta.length >= image.length or not digests_equal(delta.base, running_image.image_hash):
        return False
    return not downloader.resumable(slot, image)


def apply_delta(
    downloader: "Downloader",
    slots: "list[Slot]",
    running: int,
    running_image: "VerifiedImage",
    trust: "ImageTrust",
    image: "Target",
    delta: "Target",
    model: str,
) -> "VerifiedImage":
    """Rebuild *image* in the inactive slot from the running one and *delta*, and check it."""
    source = RangedSource(downloader, delta, 0)
    digest = hashlib.sha256()
    old = slots[running].area

    def read(n: int) -> bytes:
        data = source(n)
        digest.update(data)
        return data

    def fill(area: "Area") -> None:
        at = [0]

        def write(chunk: bytes) -> None:
            area.write_at(at[0], chunk)
            at[0] += len(chunk)

        delta_patch.apply_patch(read, old.read_at, running_image.size, write, image.length)
        if source.offset != delta.length:
            raise DeltaError("the delta is not the %d bytes its target says" % delta.length)
        if not digests_equal(digest.digest(), delta.sha256):
            raise DeltaError("the delta does not hash to its target's SHA-256")

    try:
        return install_written(slots, running, fill, trust, length=image.length,
                               sha256=image.sha256, hardware=image.hardware,
                               model=model)  # fmt: skip
    finally:
        source.close()
