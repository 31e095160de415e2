"""The device's conversation with the fleet server: enroll, then heartbeat.

The agent owns no platform code: transport, clock, durable storage and random
numbers come in as ports, so the same logic runs on CPython devices, on
MicroPython boards and in the simulator. Its boot counter is durable, so a
power cut between boots can never make it repeat a value. Runs unchanged under
MicroPython.
"""

from device_runtime.core import protocol
from device_runtime.core.errors import InvalidField, ProtocolError, TransportError, from_wire

TYPE_CHECKING = False
if TYPE_CHECKING:
    from device_runtime.core.port_types import Clock, OnBeat, RandomBytes, Store, Transport

BOOT_COUNT_KEY = "boot_count"


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
        self.boot_count = 0
        self.seq = 0
        self.heartbeat_interval = 0
        self.started_ms = 0

    def boot(self) -> int:
        """Count this boot durably before talking to anyone, then connect."""
        stored = self.store.read(BOOT_COUNT_KEY)
        previous = int(stored.decode()) if stored else 0
        self.boot_count = previous + 1
        self.store.write(BOOT_COUNT_KEY, str(self.boot_count).encode())
        self.started_ms = self.clock.monotonic_ms()
        self.transport.connect()
        self.transport.subscribe(protocol.topic_down(self.prefix, self.device_id))
        return self.boot_count

    def request(self, kind: str, body: dict[str, object]) -> dict[str, object]:
        """Send one request and wait for the response that carries its correlation id."""
        correlation = self.random_bytes(protocol.CORRELATION_BYTES)
        data = protocol.encode(kind, correlation, body)
        self.transport.publish(protocol.topic_up(self.prefix, self.device_id), data)
        deadline = self.clock.monotonic_ms() + self.timeout_ms
        while True:
            left = deadline - self.clock.monotonic_ms()
            if left <= 0:
                raise TransportError(kind + ": no response within " + str(self.timeout_ms) + " ms")
            received = self.transport.poll(left)
            if received is None:
                continue
            try:
                envelope = protocol.decode(received[1])
            except ProtocolError:
                continue
            if envelope.correlation != correlation:
                continue
            if envelope.kind == "error":
                raise from_wire(str(envelope.body["code"]), str(envelope.body["reason"]))
            if envelope.kind != protocol.RESPONSES[kind]:
                raise InvalidField(kind + ": unexpected response " + repr(envelope.kind))
            return envelope.body

    def enroll(self) -> dict[str, object]:
        body: dict[str, object] = {"device_id": self.device_id, "boot_count": self.boot_count}
        for key in self.info:
            body[key] = self.info[key]
        answer = self.request("enroll", body)
        interval = answer["heartbeat_interval"]
        self.heartbeat_interval = interval if isinstance(interval, int) else 0
        return answer

    def heartbeat(self) -> dict[str, object]:
        self.seq += 1
        uptime = (self.clock.monotonic_ms() - self.started_ms) // 1000
        return self.request(
            "heartbeat", {"seq": self.seq, "uptime": uptime, "boot_count": self.boot_count}
        )

    def run(self, *, beats: int, on_beat: "OnBeat | None" = None) -> None:
        """Heartbeat *beats* times at the interval the server asked for."""
        for i in range(beats):
            if i:
                self.clock.sleep_ms(self.heartbeat_interval * 1000)
            answer = self.heartbeat()
            if on_beat is not None:
                on_beat(answer)
