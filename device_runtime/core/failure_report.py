"""Failure records, uploaded from the outbox: ``failure-report`` and its acknowledgement.

Importing this module declares the two messages (:func:`protocol.add_request`),
so a device that never reports failures keeps those bytes of heap; the server
imports it too and checks the same schema. Runs unchanged under MicroPython.

A report carries the outbox's records as they lie on flash (``records``,
``core/outbox.py``'s format, each with its key and CRC), as many whole ones as
fit ``MAX_BATCH`` bytes: one byte string rather than a CBOR array, so a batch
costs the protocol's item budget one item however many records it holds. The
acknowledgement's ``settled`` lists the keys the server is done with (u32
boot, u32 seq each): recorded now, recorded before (a resend), or refused for
good (the reason says why); only those are marked in the outbox, after the
answer came. A report is sent again unchanged when no answer comes
(:meth:`DeviceAgent.idempotent_request`): the keys make a resend harmless.
"""

from device_runtime.core import protocol
from device_runtime.core.errors import InvalidField, RetryLater

TYPE_CHECKING = False
if TYPE_CHECKING:
    from device_runtime.core.agent import DeviceAgent
    from device_runtime.core.outbox import Outbox

KIND = "failure-report"
MAX_BATCH = 2048
"""Bytes of records in one report: a 64 KiB device builds it beside its message."""
MAX_SETTLED = 8 * (MAX_BATCH // 16)
"""Keys one acknowledgement may list: one per smallest possible record."""

# fmt: off
protocol.add_request(
    KIND,
    (
        "records", bytes, 1, 16, MAX_BATCH, None,
    ),
    "failure-report-ack",
    (
        "settled", bytes, 1, 0, MAX_SETTLED, None,
        "recorded", int, 1, 0, MAX_BATCH, None,
        "repeated", int, 1, 0, MAX_BATCH, None,
        "refused", int, 1, 0, MAX_BATCH, None,
        "reason", str, 0, 0, protocol.MAX_TEXT, None,
    ),
)
# fmt: on


def upload(agent: "DeviceAgent", outbox: "Outbox", limit: int = MAX_BATCH) -> int:
    """Send the outbox's pending records, batches of at most *limit* bytes, until none is
    left or the server asks to wait (the wait, in ms, is returned; 0 when all went). A
    board whose heap is short beside its TLS session sends smaller batches."""
    while True:
        records = outbox.batch(limit)
        if not records:
            return 0
        try:
            answer = agent.idempotent_request(KIND, {"records": records})
        except RetryLater as wait:
            return wait.retry_after_ms or 1
        settled = answer["settled"]
        if not isinstance(settled, bytes) or len(settled) % 8:
            raise InvalidField("failure-report-ack.settled is not whole keys")
        if not outbox.acknowledge(settled):
            raise InvalidField("failure-report-ack settles none of the records sent")
