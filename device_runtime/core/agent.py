"""The device's conversation with the fleet server: enroll, then heartbeat.

The agent owns no platform code: transport, clock, durable storage and random
numbers come in as ports, so the same logic runs on CPython devices, on
MicroPython boards and in the simulator. Its boot counter is durable, so a
power cut between boots can never make it repeat a value. Runs unchanged under
MicroPython.

A device that attests runs :class:`attesting_agent.AttestingAgent`, this
agent with the attestation flow in front (kept apart so that a device that
does not attest does not carry it in its heap).

Two kinds of trouble are survived rather than raised:

* a retry-later answer (``busy``, ``rate-limited``, ``unavailable``): the
  server did not process the request, so the same request goes again after
  the wait the server asked for, plus a random share of it so that a fleet
  told to wait at once does not come back at once; bounded by attempts and by
  a deadline;
* a lost broker connection or an unanswered heartbeat in :meth:`run`: the
  agent backs off (jittered, exponential, capped), reconnects and carries on.
  An unanswered heartbeat may have been processed, so its sequence number is
  never sent again: the next heartbeat carries the next one.
"""

from device_runtime.core import protocol
from device_runtime.core.errors import (
    InvalidField,
    ProtocolError,
    RetryLater,
    StorageError,
    TransportError,
    from_wire,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from device_runtime.core.port_types import Clock, OnBeat, RandomBytes, Store, Transport

BOOT_COUNT_KEY = "boot_count"
_MAX_BOOT_COUNT = 0xFFFFFFFF
_JITTER_SCALE = 1 << 17
"""A 16-bit random number over this is a fraction in [0, 0.5)."""


def _parse_boot_count(stored: bytes) -> int:
    """The stored decimal counter; anything else means the store is damaged.

    Only plain digits: ``int()`` would also take signs, spaces and
    underscores, and a counter written that way was not written by us.
    """
    if not 1 <= len(stored) <= 10:
        raise StorageError("boot counter is damaged: " + str(len(stored)) + " bytes stored")
    for byte in stored:
        if not 0x30 <= byte <= 0x39:
            raise StorageError("boot counter is damaged: " + repr(stored) + " is not a number")
    count = int(stored.decode())
    if count >= _MAX_BOOT_COUNT:
        raise StorageError("boot counter is exhausted: " + str(count) + " boots counted")
    return count


class DeviceAgent:
    """One device's protocol state; every method is a bounded request/response."""

    def __init__(
        self,
        *,
        device_id: str,
        hwmodel: str,
        swname: str,
        swversion: str,
        rot: str,
        transport: "Transport",
        clock: "Clock",
        store: "Store",
        random_bytes: "RandomBytes",
        prefix: str = protocol.DEFAULT_PREFIX,
        timeout_ms: int = 5000,
        retry_attempts: int = 4,
        retry_deadline_ms: int = 120000,
        backoff_ms: int = 1000,
        backoff_cap_ms: int = 60000,
    ) -> None:
        self.device_id = protocol.check_device_id(device_id)
        if rot not in protocol.ROOTS_OF_TRUST:
            raise InvalidField("unknown root of trust " + repr(rot))
        self.info = {"hwmodel": hwmodel, "swname": swname, "swversion": swversion, "rot": rot}
        self.transport = transport
        self.clock = clock
        self.store = store
        self.random_bytes = random_bytes
        self.prefix = prefix
        self.timeout_ms = timeout_ms
        self.retry_attempts = retry_attempts
        self.retry_deadline_ms = retry_deadline_ms
        self.backoff_ms = backoff_ms
        self.backoff_cap_ms = backoff_cap_ms
        self.boot_count = 0
        self.seq = 0
        self.heartbeat_interval = 0
        self.started_ms = 0

    def boot(self) -> int:
        """Count this boot durably before talking to anyone, then connect."""
        stored = self.store.read(BOOT_COUNT_KEY)
        previous = 0 if stored is None else _parse_boot_count(stored)
        self.boot_count = previous + 1
        self.store.write(BOOT_COUNT_KEY, str(self.boot_count).encode())
        self.started_ms = self.clock.monotonic_ms()
        self._connect()
        return self.boot_count

    def _connect(self) -> None:
        self.transport.connect()
        self.transport.subscribe(protocol.topic(self.prefix, self.device_id, "down"))

    def jittered(self, ms: int) -> int:
        """*ms* plus a random share of it below one half, from the random port."""
        draw = self.random_bytes(2)
        return ms + ms * ((draw[0] << 8) | draw[1]) // _JITTER_SCALE

    def request(self, kind: str, body: "dict[str, object]") -> "dict[str, object]":
        """Send one request and return its response, sending it again when told to retry later.

        A retry goes out with a fresh correlation id but the same body, since
        the server did not process the first. It gives up with the server's
        RetryLater after ``retry_attempts`` sends, or at once when the wait
        would end past ``retry_deadline_ms`` from the first send.
        """
        deadline = self.clock.monotonic_ms() + self.retry_deadline_ms
        attempt = 1
        while True:
            try:
                return self._exchange(kind, body)
            except RetryLater as answer:
                wait = self.jittered(answer.retry_after_ms)
                if attempt >= self.retry_attempts:
                    raise
                if self.clock.monotonic_ms() + wait > deadline:
                    raise
                self.clock.sleep_ms(wait)
                attempt += 1

    def _exchange(self, kind: str, body: "dict[str, object]") -> "dict[str, object]":
        """One send and the wait for the response that carries its correlation id."""
        correlation = self.random_bytes(protocol.CORRELATION_BYTES)
        data = protocol.encode(kind, correlation, body)
        leaf = "att/up" if protocol.PLANES[kind] == protocol.ATTESTATION_PLANE else "up"
        self.transport.publish(protocol.topic(self.prefix, self.device_id, leaf), data)
        deadline = self.clock.monotonic_ms() + self.timeout_ms
        while True:
            left = deadline - self.clock.monotonic_ms()
            if left <= 0:
                raise TransportError(kind + ": no response within " + str(self.timeout_ms) + " ms")
            received = self.transport.poll(left)
            if received is None:
                continue
            try:
                envelope = protocol.decode(received[1], protocol.MAX_DOWN_MESSAGE)
            except ProtocolError:
                continue
            if envelope.correlation != correlation:
                continue
            answer = envelope.body
            if envelope.kind == "error":
                raise from_wire(
                    str(answer["code"]), str(answer["reason"]), answer.get("retry_after")
                )
            if envelope.kind != protocol.RESPONSES[kind]:
                raise InvalidField(kind + ": unexpected response " + repr(envelope.kind))
            return answer

    def idempotent_request(self, kind: str, body: "dict[str, object]") -> "dict[str, object]":
        """:meth:`request`, sent again with the same body when no answer comes.

        Only for a request the server recognises when it sees it again (an
        enroll is the same however often it is sent; an update report carries
        its own key), so a lost answer costs a resend, never a second effect.
        Gives up with the TransportError after ``retry_attempts`` unanswered
        sends, each wait a jittered back-off.
        """
        failures = 0
        while True:
            try:
                return self.request(kind, body)
            except TransportError:
                failures += 1
                if failures >= self.retry_attempts:
                    raise
                self.clock.sleep_ms(self.jittered(self.backoff(failures - 1)))

    def enroll(self) -> "dict[str, object]":
        """Enroll, asking again after a lost answer: the first one after a pass can reach a
        broker whose grants lag behind it when another gateway process decided the pass."""
        body: "dict[str, object]" = {"device_id": self.device_id, "boot_count": self.boot_count}
        for key in self.info:
            body[key] = self.info[key]
        answer = self.idempotent_request("enroll", body)
        interval = answer["heartbeat_interval"]
        self.heartbeat_interval = interval if isinstance(interval, int) else 0
        return answer

    def heartbeat(self) -> "dict[str, object]":
        """One heartbeat with the next sequence number, whatever became of the last one."""
        self.seq += 1
        uptime = (self.clock.monotonic_ms() - self.started_ms) // 1000
        return self.request(
            "heartbeat", {"seq": self.seq, "uptime": uptime, "boot_count": self.boot_count}
        )

    def run(self, *, beats: int, on_beat: "OnBeat | None" = None) -> None:
        """Heartbeat until *beats* were acknowledged, at the interval the server asked for.

        A lost connection or an unanswered heartbeat (TransportError), or a
        server still asking to retry later once a heartbeat's own retries are
        spent, costs a back-off (doubling from ``backoff_ms`` up to
        ``backoff_cap_ms``, each wait jittered) and, for the transport, a
        reconnect; then heartbeating goes on. Any other refusal is raised.
        """
        acknowledged = 0
        failures = 0
        reconnect = False
        while acknowledged < beats:
            try:
                if reconnect:
                    self._reconnect()
                    reconnect = False
                self._before_heartbeat()
                answer = self.heartbeat()
            except (TransportError, RetryLater) as exc:
                reconnect = isinstance(exc, TransportError)
                self.clock.sleep_ms(self.jittered(self.backoff(failures)))
                failures += 1
                continue
            failures = 0
            acknowledged += 1
            if on_beat is not None:
                on_beat(answer)
            if acknowledged < beats:
                try:
                    self._idle(self.heartbeat_interval * 1000)
                except TransportError:
                    reconnect = True

    def _before_heartbeat(self) -> None:
        """What must happen before each heartbeat; an attesting agent renews its pass here."""

    def _idle(self, ms: int) -> None:
        """The wait between heartbeats."""
        self.clock.sleep_ms(ms)

    def backoff(self, failures: int) -> int:
        """The wait, before jitter, after *failures* failures in a row: doubling, capped."""
        return min(self.backoff_cap_ms, self.backoff_ms << min(failures, 24))

    def _reconnect(self) -> None:
        """A fresh session: closing first also drops a connection that only looks alive."""
        self.transport.close()
        self._connect()
