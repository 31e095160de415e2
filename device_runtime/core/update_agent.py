"""The device's update agent: what the fleet operator signed for this hardware, installed for one
trial, and every step reported.

One :meth:`UpdateAgent.update` is one check: refresh the TUF metadata
(``tuf/updater.py``: every signature, version, expiry and size is checked
there), read the model's signed pointer ``<model>/current.json`` (the release
service's: version, security counter, image digest, image target, deltas),
and if it names an image other than the one running, install it into the
inactive slot (``delta_update.install_update``: by delta when one applies,
else the full image, resumable) and mark it pending. The caller then resets;
the bootloader gives the image one trial, and the image's own health check
confirms it or the next boot reverts (``boot_selection``, ``trial_boot``).
:meth:`UpdateAgent.settle` reports what a boot made of the last update.

What this module refuses, beyond what the TUF client and the image checks
refuse: a pointer, image or delta for another model (``wrong-hardware``), an
image whose security counter is below the root of trust's (``rollback``: the
bootloader would refuse it anyway, so it is never downloaded), and an image
whose trial already failed here (``failed-before``: without that, a release
that cannot pass its health check would be installed, tried and reverted at
every boot until a new one is published; it is passed over silently, as its
revert was reported). Every refusal leaves the device on its image and is
reported as ``failed`` with its code, which the server records as a security
event. A check that finds nothing new reports nothing: a fleet polling its
repository does not fill its update history. Portable: CPython and
MicroPython.
"""

from device_runtime.core.delta_update import install_update
from device_runtime.core.download import Target
from device_runtime.core.errors import SevenfoldError
from device_runtime.core.slot_install import mark_pending

TYPE_CHECKING = False
if TYPE_CHECKING:
    from device_runtime.core.boot_selection import Boot
    from device_runtime.core.download import Downloader
    from device_runtime.core.image_trust import ImageTrust
    from device_runtime.core.port_types import Store
    from device_runtime.core.slots import Slot
    from device_runtime.core.tuf.updater import TargetInfo, Updater
    from device_runtime.core.update_status import UpdateReporter

POINTER = "current.json"
FAILED_KEY = "update-failed"
"""The digest of the last image whose trial failed on this device (hex)."""
SETTLED_KEY = "update-settled"
"""What the last reported boot outcome was, so that each is reported once."""
TRYING_KEY = "update-trying"
"""The digest (hex) and version of the image last marked pending."""


class UpdateRefused(SevenfoldError):
    """The offered update is not one this device takes; ``code`` says which check."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code


def _text(custom: "dict[str, object]", key: str, what: str) -> str:
    value = custom.get(key)
    if not isinstance(value, str) or not value or len(value) > 128:
        raise UpdateRefused("bad-metadata", what + " has no valid " + key)
    return value


def _number(custom: "dict[str, object]", key: str, what: str) -> int:
    value = custom.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise UpdateRefused("bad-metadata", what + " has no valid " + key)
    return value


def _digest(text: str, what: str) -> bytes:
    try:
        value = bytes.fromhex(text)
    except ValueError:
        value = b""
    if len(value) != 32:
        raise UpdateRefused("bad-metadata", what + " is not a SHA-256 in hex")
    return value


class Offer:
    """The update the pointer names: its version and security counter, the image target and
    the delta from the running image (None when there is none)."""

    def __init__(self, version: str, security_counter: int, image_digest: str, image: Target,
                 delta: "Target | None") -> None:  # fmt: skip
        self.version = version
        self.image_digest = image_digest
        self.security_counter = security_counter
        self.image = image
        self.delta = delta


class UpdateAgent:
    """One device's updates: its TUF *updater*, its *downloader*, its durable *store* (what
    failed before, what was reported), its hardware *model*, and where it reports
    (*reporter*, None on a device that does not report)."""

    def __init__(
        self,
        *,
        updater: "Updater",
        downloader: "Downloader",
        store: "Store",
        model: str,
        reporter: "UpdateReporter | None" = None,
    ) -> None:
        self.updater = updater
        self.downloader = downloader
        self.store = store
        self.model = model
        self.reporter = reporter
        self.failure: "str | None" = None
        """Why the last check installed nothing though something was offered ("code: reason")."""

    def _report(self, state: str, from_version: str, to_version: str, target: str,
                reason: "str | None" = None, done: "int | None" = None,
                total: "int | None" = None) -> None:  # fmt: skip
        if self.reporter is not None:
            if reason is not None:
                reason = reason[:200]
            self.reporter.report(state, from_version, to_version, target[:128], done, total,
                                 reason)  # fmt: skip

    def _target(self, info: "TargetInfo", base: bytes = b"") -> Target:
        # The target's own hardware model, as the role that lists it signed it: the
        # pointer's is checked too, but a pointer may name a target of another model's
        # role (both roles are signed by the same release key).
        hwmodel = info.custom.get("hwmodel")
        if hwmodel != self.model:
            raise UpdateRefused("wrong-hardware", "%s is for %r, not this device's %r"
                                % (info.path[:60], str(hwmodel)[:40], self.model))  # fmt: skip
        sha256 = info.hashes.get("sha256")
        if not isinstance(sha256, str):
            raise UpdateRefused("bad-metadata", info.path[:60] + " has no SHA-256")
        return Target(info.path, self.updater.target_url(info), info.length,
                      _digest(sha256, info.path[:60]), [self.model], base)  # fmt: skip

    def offer(self, boot: "Boot", floor: int) -> "Offer | None":
        """What the signed metadata offers this device now; None when it runs it already or
        nothing is published for its model. UpdateRefused (or the client's TufError) when
        the offer is one it must not take."""
        pointer = self.updater.target(self.model + "/" + POINTER)
        if pointer is None:
            return None
        custom = pointer.custom
        what = "the pointer " + pointer.path[:60]
        hwmodel = _text(custom, "hwmodel", what)
        if hwmodel != self.model:
            raise UpdateRefused("wrong-hardware", "the update is for %r, not this device's %r"
                                % (hwmodel[:40], self.model))  # fmt: skip
        digest = _digest(_text(custom, "image_digest", what), what)
        if digest == boot.image.image_hash:
            return None
        version = _text(custom, "version", what)
        counter = _number(custom, "security_counter", what)
        if counter < floor:
            raise UpdateRefused("rollback", "%s has security counter %d, below this device's %d"
                                % (version, counter, floor))  # fmt: skip
        failed = self.store.read(FAILED_KEY)
        if failed is not None and bytes(failed) == digest.hex().encode():
            return None  # its trial failed here: reported then, not taken again
        image_info = self.updater.find(_text(custom, "image", what))
        if image_info.custom.get("image_digest") != digest.hex():
            raise UpdateRefused("mismatch", "the image target is not the pointer's image")
        image = self._target(image_info)
        delta = None
        deltas = custom.get("deltas")
        running = boot.image.image_hash.hex()
        if isinstance(deltas, dict) and isinstance(deltas.get(running), str):
            delta_info = self.updater.find(str(deltas[running]))
            delta = self._target(delta_info, boot.image.image_hash)
        return Offer(version, counter, digest.hex(), image, delta)

    def update(self, slots: "list[Slot]", boot: "Boot", trust: "ImageTrust") -> "str | None":
        """Check once and install what is offered; the version now pending (reset to try it)
        or None. Every failure is reported and leaves the running image as it is."""
        running = boot.image.version
        target = self.model + "/" + POINTER
        to_version = ""
        self.failure = None
        try:
            offer = self.offer(boot, trust.floor())
            if offer is None:
                return None
            to_version = offer.version
            target = offer.image.name
            self._report("checking", running, to_version, target)
            self._report("downloading", running, to_version, target, None, 0,
                         offer.image.length)  # fmt: skip
            reporter = self.reporter
            if reporter is not None:
                name, total = target[:128], offer.image.length

                def durable(done: int) -> None:
                    reporter.progress(running, to_version, name, done, total)

                self.downloader.on_durable = durable
            done = install_update(self.downloader, slots, boot.slot, boot.image, trust,
                                  offer.image, offer.delta, self.model)  # fmt: skip
            mark_pending(slots, boot.slot)
            self.store.write(TRYING_KEY, (offer.image_digest + " " + to_version).encode())
        except SevenfoldError as exc:
            self.failure = str(getattr(exc, "code", "error")) + ": " + exc.reason
        except MemoryError:  # a small heap: the device stays as it was and says so
            self.failure = "too-large: the update does not fit in this device's memory"
        if self.failure is not None:
            self._report("failed", running, to_version, target, self.failure)
            return None
        note = "by " + done.via
        if done.delta_failure is not None:
            note += " (the delta failed: " + done.delta_failure + ")"
        self._report("installed", running, to_version, target, note)
        return to_version

    def settle(self, slots: "list[Slot]", boot: "Boot") -> None:
        """Report, once, what this boot made of the last update: the image on trial passed
        its health check and is confirmed, or the bootloader reverted the one on trial
        (which is then never installed again until another is published)."""
        trying = self.store.read(TRYING_KEY)
        digest, _, version = bytes(trying or b"").decode().partition(" ")
        if boot.reverted is not None:
            state = "reverted"
            slot = slots[boot.reverted]
            if digest:
                self.store.write(FAILED_KEY, digest.encode())
        elif boot.trial:
            state = "confirmed"
            slot = slots[boot.slot]
            version = boot.image.version
        else:
            return
        # The slot and generation alone repeat: two updates tried in turn from one
        # confirmed image go to the same slot as the same generation.
        mark = ("%s@%s:%d:%s" % (state, slot.name, slot.trailer().generation, digest)).encode()
        settled = self.store.read(SETTLED_KEY)
        if settled is not None and bytes(settled) == mark:
            return
        running = boot.image.version
        if state == "confirmed":
            self._report("booted", version, running, "slot " + slot.name)
        self._report(state, version or running, running, "slot " + slot.name,
                     boot.revert_reason if state == "reverted" else None)  # fmt: skip
        self.store.write(SETTLED_KEY, mark)
