"""Update progress, reported to the fleet server: ``update-status`` and its acknowledgement.

A device tells the server where each update stands (checking, downloading,
installed, booted, confirmed, reverted, failed), so the operator sees a
fleet's rollout from the devices' side and a revert or a failure becomes a
security event. Importing this module declares the two messages
(:func:`protocol.add_request`); a device that never reports updates does not
import it and keeps those bytes of heap. The server imports it too, so both
ends check the same schema. Runs unchanged under MicroPython.

Every report carries an idempotency key ``(boot_count, seq)``: the boot count
is the agent's durable one and ``seq`` counts this boot's reports from 1, so a
key is never reused across power cuts without storing anything more. A report
is sent again with the same key until it is acknowledged
(:meth:`DeviceAgent.idempotent_request`); the server records a key once,
acknowledges its repeats, and refuses a key older than the last it recorded
(``replayed``). A report that was never acknowledged spends its key: the next
one carries the next, and the server takes it (a newer state supersedes it).
"""

from device_runtime.core import protocol
from device_runtime.core.errors import InvalidField

TYPE_CHECKING = False
if TYPE_CHECKING:
    from device_runtime.core.agent import DeviceAgent

STATES = ("checking", "downloading", "installed", "booted", "confirmed", "reverted", "failed")
MAX_VERSION = 32
"""Characters of a version, as ``enroll``'s ``swversion``."""
MAX_TARGET = 128
"""Characters of a target's name (its TUF target path)."""
_U32 = 0xFFFFFFFF

# fmt: off
protocol.add_request(
    "update-status",
    (
        "state", str, 1, 0, 16, STATES,
        "from_version", str, 1, 0, MAX_VERSION, None,
        "to_version", str, 1, 0, MAX_VERSION, None,
        "target", str, 1, 0, MAX_TARGET, None,
        "done", int, 0, 0, protocol.MAX_COUNTER, None,
        "total", int, 0, 0, protocol.MAX_COUNTER, None,
        "reason", str, 0, 0, protocol.MAX_TEXT, None,
        "boot_count", int, 1, 0, _U32, None,
        "seq", int, 1, 1, protocol.MAX_COUNTER, None,
    ),
    "update-status-ack",
    (
        "boot_count", int, 1, 0, _U32, None,
        "seq", int, 1, 1, protocol.MAX_COUNTER, None,
    ),
)
# fmt: on


def check_progress(body: "dict[str, object]") -> None:
    """What one schema cannot say: bytes done need the total, and never pass it."""
    done = body.get("done")
    total = body.get("total")
    if done is None:
        return
    if not isinstance(total, int):
        raise InvalidField("update-status.done needs update-status.total")
    if isinstance(done, int) and done > total:
        raise InvalidField("update-status.done " + str(done) + " is past the total " + str(total))


class UpdateReporter:
    """Reports one device's update progress through its agent, a key per report."""

    __slots__ = ("agent", "interval_ms", "seq", "_sent_ms")

    def __init__(self, agent: "DeviceAgent", progress_interval_ms: int = 5000) -> None:
        self.agent = agent
        self.interval_ms = progress_interval_ms
        self.seq = 0
        self._sent_ms = -1

    def report(
        self,
        state: str,
        from_version: str,
        to_version: str,
        target: str,
        done: "int | None" = None,
        total: "int | None" = None,
        reason: "str | None" = None,
    ) -> "dict[str, object]":
        """Send one report until it is acknowledged; the acknowledgement names its key."""
        self.seq += 1
        body: "dict[str, object]" = {
            "state": state,
            "from_version": from_version,
            "to_version": to_version,
            "target": target,
            "boot_count": self.agent.boot_count,
            "seq": self.seq,
        }
        if done is not None:
            body["done"] = done
        if total is not None:
            body["total"] = total
        if reason is not None:
            body["reason"] = reason
        check_progress(body)
        answer = self.agent.idempotent_request("update-status", body)
        if answer["seq"] != self.seq or answer["boot_count"] != self.agent.boot_count:
            raise InvalidField("update-status-ack names another report")
        return answer

    def progress(
        self, from_version: str, to_version: str, target: str, done: int, total: int
    ) -> "dict[str, object] | None":
        """A ``downloading`` report, at most one per ``progress_interval_ms`` (the first and
        the last, ``done == total``, always go): a download loop may call it per block.
        None when it was held back."""
        now = self.agent.clock.monotonic_ms()
        if done < total and self._sent_ms >= 0 and now - self._sent_ms < self.interval_ms:
            return None
        self._sent_ms = now
        return self.report("downloading", from_version, to_version, target, done, total)
