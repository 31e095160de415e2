"""The fleet server's MQTT side: device requests in, responses out.

The gateway is the only place that turns broker traffic into calls on the
services. The sender's identity is the device id in the topic, which the broker
binds to the client certificate (``use_identity_as_username`` + ``%u`` ACLs);
nothing in a payload can change it. Every rejected message is answered with a
specific error code, logged with its reason and recorded, and the gateway goes
on serving everyone else.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from device_runtime.core import protocol
from device_runtime.core.errors import InvalidField, ProtocolError, TransportError
from device_runtime.ports.cpython.transport import disable_nagle
from fleet_platform.mqtt_tls import client_context
from fleet_platform.pki import IssuedCredential
from fleet_platform.rejection_budget import RejectionBudget

log = logging.getLogger(__name__)

Body = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Request:
    """A validated request and the identity the broker authenticated for it."""

    device_id: str
    kind: str
    body: Body
    received_at: datetime


Handler = Callable[[Request], Body]

RecordRejection = Callable[[str, ProtocolError, datetime], None]
"""(device id, the error, when) -> None: how the owning service writes a rejection down."""

_QUEUE_LIMIT = 1024
_WORKERS = 4
_CONNECT_TIMEOUT_S = 10.0


class Gateway:
    """Subscribes to every device's up topic and dispatches to registered handlers."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        ca_path: Path,
        credential: IssuedCredential,
        record_rejection: RecordRejection,
        prefix: str = protocol.DEFAULT_PREFIX,
        budget: RejectionBudget | None = None,
    ) -> None:
        self.prefix = prefix
        self._budget = budget or RejectionBudget()
        self._record_rejection = record_rejection
        self._host = host
        self._port = port
        self._handlers: dict[str, Handler] = {}
        self._work: queue.Queue[mqtt.MQTTMessage | None] = queue.Queue(maxsize=_QUEUE_LIMIT)
        self._workers: list[threading.Thread] = []
        self._ready = threading.Event()
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=protocol.SERVER_IDENTITY,
            protocol=mqtt.MQTTv311,
        )
        self._client.tls_set_context(client_context(ca_path=ca_path, credential=credential))
        self._client.on_socket_open = disable_nagle
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message

    def handle(self, kind: str, handler: Handler) -> None:
        """Route requests of *kind* to *handler*; its result is the response body."""
        if kind not in protocol.REQUESTS:
            raise InvalidField(f"{kind!r} is not a request type")
        self._handlers[kind] = handler

    def start(self) -> None:
        for index in range(_WORKERS):
            worker = threading.Thread(target=self._work_loop, name=f"gateway-{index}", daemon=True)
            worker.start()
            self._workers.append(worker)
        try:
            self._client.connect(self._host, self._port, keepalive=30)
        except OSError as exc:
            raise TransportError(f"cannot reach the broker at {self._host}:{self._port}") from exc
        self._client.loop_start()
        if not self._ready.wait(_CONNECT_TIMEOUT_S):
            self.stop()
            raise TransportError("the broker did not accept the server's connection in time")

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
        for _ in self._workers:
            self._work.put(None)
        for worker in self._workers:
            worker.join(timeout=5)
        self._workers.clear()

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            log.error("broker refused the server connection: %s", reason)
            return
        client.subscribe(f"{self.prefix}/d/+/up", qos=1)
        self._ready.set()

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        try:
            self._work.put_nowait(msg)
        except queue.Full:
            log.warning("dropping a message on %s: request queue full", msg.topic)

    def _work_loop(self) -> None:
        while (msg := self._work.get()) is not None:
            self._serve(msg.topic, bytes(msg.payload))

    def _serve(self, topic: str, payload: bytes) -> None:
        now = datetime.now(UTC)
        try:
            device_id = protocol.device_from_topic(self.prefix, topic)
        except ProtocolError as exc:
            log.warning("ignoring message on %r: %s", topic, exc.explain())
            return
        try:
            envelope = protocol.decode_request(payload, device_id)
            handler = self._handlers.get(envelope.kind)
            if handler is None:
                raise InvalidField(f"{envelope.kind!r} is not served here")
            request = Request(
                device_id=device_id, kind=envelope.kind, body=envelope.body, received_at=now
            )
            answer = protocol.encode(
                protocol.RESPONSES[envelope.kind], envelope.correlation, handler(request)
            )
        except ProtocolError as exc:
            record, suppressed = self._budget.admit(device_id, time.monotonic())
            if suppressed:
                log.warning("%d more rejections from %s were not recorded", suppressed, device_id)
            if record:
                log.warning("rejected a message from %s: %s", device_id, exc.explain())
                self._record_rejection(device_id, exc, now)
            correlation = protocol.correlation_of(payload)
            if correlation is None:
                return
            answer = protocol.encode("error", correlation, protocol.error_body(exc))
        self._client.publish(protocol.topic_down(self.prefix, device_id), answer, qos=1)
