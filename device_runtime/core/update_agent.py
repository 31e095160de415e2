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
from device_runtime.core.slots import CONFIRMED

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
REPORTED_KEY = "update-reported"
"""The last failure reported, so that a check failing the same way again reports nothing."""
SETTLED_KEY = "update-settled"
"""What the last reported boot outcome was, so that each is reported once."""
TRYING_KEY = "update-trying"
"""The digest (hex) and version of the image last marked pending."""


class UpdateRefused(SevenfoldError):
    """The offered update is not one this device takes; ``code`` says which check."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code


NAME_LIMIT = 128
"""Characters of a target's name the agent takes: what ``update-status`` reports."""
VERSION_LIMIT = 32
"""Characters of a version: what ``update-status`` and ``enroll`` carry. (Not imported from
``update_status``: a device that does not report keeps the protocol out of its heap.)"""


def _text(custom: "dict[str, object]", key: str, what: str, limit: int = NAME_LIMIT) -> str:
    """A field of signed metadata that the device will repeat (in reports, in its store):
    printable ASCII, at most *limit* characters."""
    value = custom.get(key)
    if not isinstance(value, str) or not 0 < len(value) <= limit or not _printable(value):
        raise UpdateRefused("bad-metadata", what + " has no valid " + key)
    return value


def _printable(text: str) -> bool:
    return all(" " <= ch <= "~" for ch in text)


def _shown(text: str, limit: int) -> str:
    """*text* fit for a report: printable ASCII (anything else as ``?``), at most *limit*."""
    return "".join(ch if " " <= ch <= "~" else "?" for ch in text[:limit])


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
        """Best effort: a report that cannot be sent (the broker gone mid-download) must not
        stop the update; this check then reports nothing more."""
        reporter = self.reporter
        if reporter is None:
            return
        try:
            reporter.report(state, _shown(from_version, VERSION_LIMIT),
                            _shown(to_version, VERSION_LIMIT), _shown(target, NAME_LIMIT), done,
                            total, None if reason is None else _shown(reason, 200))  # fmt: skip
        except SevenfoldError:
            self.reporter = None

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

    def _trying(self, boot: "Boot") -> "tuple[str, str]":
        """The digest and version last marked pending; when the bootloader reverted, that
        image is remembered as failed here (on every boot, whether or not it can report)."""
        try:
            trying = bytes(self.store.read(TRYING_KEY) or b"").decode()
        except UnicodeError:
            trying = ""
        digest, _, version = trying.partition(" ")
        if boot.reverted is not None and digest:
            failed = self.store.read(FAILED_KEY)
            if failed is None or bytes(failed) != digest.encode():
                self.store.write(FAILED_KEY, digest.encode())
        return digest, version

    def offer(self, boot: "Boot", floor: int) -> "Offer | None":
        """What the signed metadata offers this device now; None when it runs it already,
        nothing is published for its model, or its trial already failed here.
        UpdateRefused (or the client's TufError) when the offer is one it must not take."""
        self._trying(boot)
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
        version = _text(custom, "version", what, VERSION_LIMIT)
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
        return Offer(version, counter, digest.hex(), image, self._delta(custom, boot))

    def _delta(self, custom: "dict[str, object]", boot: "Boot") -> "Target | None":
        """The delta from the running image, if one is listed and sound; a delta that is not
        (missing, of another model, malformed) is passed over for the full image."""
        deltas = custom.get("deltas")
        name = deltas.get(boot.image.image_hash.hex()) if isinstance(deltas, dict) else None
        if not isinstance(name, str) or len(name) > NAME_LIMIT:
            return None
        try:
            return self._target(self.updater.find(name), boot.image.image_hash)
        except SevenfoldError:
            return None

    def update(self, slots: "list[Slot]", boot: "Boot", trust: "ImageTrust") -> "str | None":
        """Check once and install what is offered; the version now pending (reset to try it)
        or None. A failure leaves the running image as it is and is reported once (a check
        failing the same way again reports nothing); nothing raised in here escapes."""
        running = boot.image.version
        target = self.model + "/" + POINTER
        to_version = ""
        self.failure = None
        try:
            offer = self.offer(boot, trust.floor())
            if offer is None:
                self._forget_failure()
                return None
            to_version = offer.version
            target = offer.image.name
            self._report("checking", running, to_version, target)
            self._report("downloading", running, to_version, target, None, 0,
                         offer.image.length)  # fmt: skip
            if self.reporter is not None:
                name, total = target, offer.image.length

                def durable(done: int) -> None:
                    if self.reporter is not None:
                        self._report("downloading", running, to_version, name, None, done,
                                     total)  # fmt: skip

                self.downloader.on_durable = durable
            done = install_update(self.downloader, slots, boot.slot, boot.image, trust,
                                  offer.image, offer.delta, self.model)  # fmt: skip
            made = done.image
            if (made.image_hash.hex(), made.version, made.security_counter) != (
                offer.image_digest,
                offer.version,
                offer.security_counter,
            ):
                named = "%s, counter %d" % (made.version[:32], made.security_counter)
                raise UpdateRefused("mismatch", "the image installed (" + named + ") is not"
                                    " the one the pointer names")  # fmt: skip
            # Remembered before it is pending: a power cut between the two leaves a record of
            # an image nothing boots, never a pending image the record does not name.
            self.store.write(TRYING_KEY, (offer.image_digest + " " + to_version).encode())
            mark_pending(slots, boot.slot)
        except SevenfoldError as exc:
            self.failure = str(getattr(exc, "code", "error")) + ": " + exc.reason
        except MemoryError:  # a small heap: the device stays as it was and says so
            self.failure = "too-large: the update does not fit in this device's memory"
        except Exception as exc:  # a defect here must cost an update, never the device
            self.failure = "internal: " + type(exc).__name__ + ": " + str(exc)[:120]
        finally:
            self.downloader.on_durable = None
        if self.failure is not None:
            self._report_failure(running, to_version, target, self.failure)
            return None
        self._forget_failure()
        note = "by " + done.via
        if done.delta_failure is not None:
            note += " (the delta failed: " + done.delta_failure + ")"
        self._report("installed", running, to_version, target, note)
        return to_version

    def _report_failure(self, running: str, to_version: str, target: str, reason: str) -> None:
        """Report *reason* unless it is the one reported last: a device polling a repository
        that fails the same way does not flood its history and the security log."""
        mark = _shown(reason, 200).encode()
        last = self.store.read(REPORTED_KEY)
        if last is not None and bytes(last) == mark:
            return
        self._report("failed", running, to_version, target, reason)
        if self.reporter is not None:
            self.store.write(REPORTED_KEY, mark)

    def _forget_failure(self) -> None:
        if self.store.read(REPORTED_KEY):
            self.store.write(REPORTED_KEY, b"")

    def settle(self, slots: "list[Slot]", boot: "Boot") -> None:
        """Report, once, what this boot made of the last update: the image on trial passed
        its health check and is confirmed (the caller confirmed it first), or the
        bootloader reverted the one on trial (which is then never installed again until
        another is published)."""
        digest, version = self._trying(boot)
        if boot.reverted is not None:
            state = "reverted"
            slot = slots[boot.reverted]
        elif boot.trial and slots[boot.slot].trailer().state == CONFIRMED:
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
        if self.reporter is not None:
            self.store.write(SETTLED_KEY, mark)
