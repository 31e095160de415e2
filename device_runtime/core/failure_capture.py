"""What a device records of its failures: crashes, reboot reasons, security events, metrics.

Each record is a small CBOR map appended to the outbox (``core/outbox.py``)
the moment it happens, so it survives the reset that usually follows and
waits there for the server. ``k`` says what it is:

``crash``
    an application's unhandled exception: ``type``, ``msg`` and ``frames``
    (``[file, line, function]``, outermost first). The frames come from a port
    function (``ports/*/exception_frames.py``: CPython's traceback,
    MicroPython's ``sys.print_exception`` parsed), so the core never needs
    either. Bounded: at most ``MAX_FRAMES`` frames (the outermost and
    innermost halves; ``omitted`` counts the rest), texts cut with ``CUT``.
``reboot``
    why the previous boot ended (``reason``, one of ``REBOOT_REASONS``, after
    Memfault's): what the firmware marked durably before resetting
    (:func:`mark_reboot`) when it could, else what the hardware says, else
    ``unknown``.
``security``
    a refusal the fleet must hear of (``event``, one of ``SECURITY_EVENTS``,
    and ``detail``).
``metrics``
    a heartbeat of health: ``crash_free_s``, ``free_mem``, ``reconnects``.

Every record also carries ``fw`` (the firmware version) and ``up`` (seconds
since this boot began); its key in the outbox is (boot count, sequence
number). Portable: CPython and MicroPython.
"""

from device_runtime.core import cbor
from device_runtime.core.outbox import MAX_PAYLOAD

TYPE_CHECKING = False
if TYPE_CHECKING:
    from device_runtime.core.outbox import Outbox
    from device_runtime.core.port_types import Clock, FramesOf, Store

REBOOT_REASONS = (
    "power-on",
    "pin-reset",
    "software-reset",
    "hardware-watchdog",
    "software-watchdog",
    "brown-out",
    "assert",
    "out-of-memory",
    "firmware-update",
    "update-reverted",
    "security-violation",
    "unknown",
)
SECURITY_EVENTS = ("signature", "attestation", "rollback", "quarantine")
KINDS = ("crash", "reboot", "security", "metrics")
MAX_FRAMES = 16
MAX_TEXT = 128
"""Characters of a message or a function name; longer ones are cut at the end."""
MAX_FILE = 48
"""Characters of a file name; longer ones are cut at the front (the end names the file)."""
CUT = "...[cut]"
REBOOT_KEY = "reboot_reason"


def bounded(text: str, limit: int = MAX_TEXT) -> str:
    """*text*, cut to *limit* characters with ``CUT`` at the end when it is longer."""
    if len(text) <= limit:
        return text
    return text[: limit - len(CUT)] + CUT


def _frame(frame: "tuple[str, int, str]") -> "list[object]":
    name = frame[0]
    if len(name) > MAX_FILE:
        name = CUT + name[len(name) - MAX_FILE + len(CUT) :]
    return [name, frame[1], bounded(frame[2])]


def mark_reboot(store: "Store", reason: str) -> None:
    """Record, before resetting, why: the next boot reads it back (:func:`take_reboot`)."""
    if reason not in REBOOT_REASONS:
        reason = "unknown"
    store.write(REBOOT_KEY, reason.encode())


def take_reboot(store: "Store", hardware: "str | None" = None) -> str:
    """Why the last boot ended, once: the firmware's mark wins over the hardware's word."""
    stored = store.read(REBOOT_KEY)
    if stored:
        store.write(REBOOT_KEY, b"")
        reason = stored.decode()
        if reason in REBOOT_REASONS:
            return reason
    if hardware in REBOOT_REASONS:
        return str(hardware)
    return "unknown"


class FailureCapture:
    """Appends one device's failure records to its *outbox*, as they happen."""

    __slots__ = ("outbox", "clock", "firmware", "frames_of", "started_ms", "crashed_ms")

    def __init__(
        self,
        outbox: "Outbox",
        clock: "Clock",
        firmware: str,
        frames_of: "FramesOf",
    ) -> None:
        self.outbox = outbox
        self.clock = clock
        self.firmware = firmware
        self.frames_of = frames_of
        self.started_ms = clock.monotonic_ms()
        self.crashed_ms = self.started_ms

    def _record(self, body: "dict[str, object]") -> "tuple[int, int]":
        body["fw"] = self.firmware
        body["up"] = (self.clock.monotonic_ms() - self.started_ms) // 1000
        return self.outbox.append(cbor.dumps(body))

    def crash(self, exc: BaseException) -> "tuple[int, int]":
        """Record an application's unhandled exception."""
        self.crashed_ms = self.clock.monotonic_ms()
        frames = self.frames_of(exc)
        omitted = 0
        if len(frames) > MAX_FRAMES:
            omitted = len(frames) - MAX_FRAMES
            half = MAX_FRAMES // 2
            frames = frames[:half] + frames[len(frames) - half :]
        kept = [_frame(f) for f in frames]
        body: "dict[str, object]" = {
            "k": "crash",
            "type": bounded(type(exc).__name__),
            "msg": bounded(str(exc)),
            "frames": kept,
        }
        if omitted:
            body["omitted"] = omitted
        while len(cbor.dumps(body)) > MAX_PAYLOAD - 64 and kept:
            kept.pop(len(kept) // 2)
            omitted += 1
            body["omitted"] = omitted
        return self._record(body)

    def reboot(self, reason: str) -> "tuple[int, int]":
        """Record why the previous boot ended (:func:`take_reboot`'s answer)."""
        if reason not in REBOOT_REASONS:
            reason = "unknown"
        return self._record({"k": "reboot", "reason": reason})

    def security(self, event: str, detail: str) -> "tuple[int, int]":
        """Record a signature, attestation or rollback rejection, or a quarantine."""
        return self._record({"k": "security", "event": event, "detail": bounded(detail)})

    def metrics(self, free_mem: int, reconnects: int) -> "tuple[int, int]":
        """Record a heartbeat of health; crash-free time runs from the boot or the last crash."""
        crash_free = (self.clock.monotonic_ms() - self.crashed_ms) // 1000
        body: "dict[str, object]" = {
            "k": "metrics",
            "crash_free_s": crash_free,
            "free_mem": free_mem,
            "reconnects": reconnects,
        }
        return self._record(body)
