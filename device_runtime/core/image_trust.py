"""What may boot: an image the device's image key signed, not older than the root of trust allows.

The one rule the bootloader and the installer both apply
(``boot_selection``, ``slot_install``): the image verifies
(``signed_image.verify``: structure, hash, KEYHASH, ECDSA signature) and its
security counter is not below the root of trust's anti-rollback counter,
MCUboot's hardware downgrade prevention. The counter is the root of trust's
monotonic counter :data:`IMAGE_COUNTER` (``device_runtime/rot``: a TPM NV
counter, or the DICE or software backend's MAC'd record). It rises only when
an image is confirmed, to that image's security counter, one increment at a
time: a power cut between two increments leaves it between the old image's
counter and the new one's, where the confirmed new image still boots and
finishes the climb (:meth:`ImageTrust.advance` at every boot of a confirmed
image). Portable: CPython and MicroPython.
"""

from device_runtime.core import signed_image
from device_runtime.core.errors import RootOfTrustError
from device_runtime.core.signed_image import ImageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from device_runtime.core.port_types import MonotonicCounters, ReadBytes, VerifyEcdsaDer
    from device_runtime.core.signed_image import VerifiedImage

IMAGE_COUNTER = 0
"""The root of trust's counter for image security counters: MCUboot numbers its hardware
security counters by image, and a device here runs one image (image 0)."""


class ImageTrust:
    """The device's image key (a 65-byte SEC1 point), the crypto port's DER signature
    check, and the root of trust that holds the anti-rollback counter; images are read
    *chunk_size* bytes at a time (more where memory is plenty: each read costs a round
    through the interpreter)."""

    def __init__(
        self,
        public_key: bytes,
        verify_signature: "VerifyEcdsaDer",
        counters: "MonotonicCounters",
        chunk_size: int = signed_image.CHUNK_SIZE,
    ) -> None:
        self.public_key = public_key
        self.verify_signature = verify_signature
        self.counters = counters
        self.chunk_size = chunk_size

    def floor(self) -> int:
        """The lowest security counter an image may have."""
        return self.counters.counter(IMAGE_COUNTER)

    def verify(self, read: "ReadBytes", max_size: int) -> "VerifiedImage":
        """The image ``read(n)`` yields, if it is signed and not a rollback; else ImageError."""
        image = signed_image.verify(
            read, self.public_key, self.verify_signature, max_size, self.chunk_size
        )
        floor = self.floor()
        if image.security_counter < floor:
            raise ImageError("image %s has security counter %d, below the root of trust's"
                             " %d: a rollback" % (image.version, image.security_counter,
                                                  floor))  # fmt: skip
        return image

    def advance(self, security_counter: int) -> None:
        """Raise the counter to *security_counter*, one increment per call as a monotonic
        counter must, so that a cut anywhere leaves it at most there."""
        value = self.floor()
        while value < security_counter:
            risen = self.counters.increment(IMAGE_COUNTER)
            if risen <= value:
                raise RootOfTrustError("counter %d did not rise from %d" % (IMAGE_COUNTER, value))
            value = risen
