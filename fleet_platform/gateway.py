"""The fleet server's MQTT side: device requests in, responses out.

The gateway is the only place that turns broker traffic into calls on the
services. The sender's identity is the device id in the topic, which the broker
binds to the client certificate (``use_identity_as_username`` + ``%u`` ACLs);
nothing in a payload can change it.

What it guarantees, whatever a device sends:

* **Every request gets an answer or a counted reason.** A rejected request is
  answered with its specific error code; a device over its rate is told to
  wait (``rate-limited``), an overloaded server says ``busy`` with a
  ``retry_after``, a storage outage ``unavailable``, a bug ``internal``; only a
  message with no recoverable correlation id (nothing to answer to), or a
  device ignoring its rate-limit notice, is dropped, and that is counted.
* **No message stops a worker.** Every exception is caught per request; an
  unexpected one is logged with its traceback once (then counted) and the
  worker goes on. Liveness (:meth:`health`) reports a dead worker or a lost
  broker connection.
* **Fairness.** Each device has its own short line (:mod:`request_queue`) and
  token bucket (:mod:`rate_limits`); a flood from one device costs the others
  a few microseconds per message, not their place in line.
* **Answers after commit.** A worker serves a batch of requests (at most one
  per device) in one database transaction and publishes the answers only once
  it has committed, so an acknowledged heartbeat is durable; a request whose
  handler fails in an unexpected way is retried alone so it cannot take the
  rest of its batch down with it.
* **One replica per message.** Servers subscribe through an MQTT shared
  subscription, so N replicas or gateway processes split the traffic instead
  of each processing (and then refusing as replays) every message.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from device_runtime.core import protocol
from device_runtime.core.errors import (
    Busy,
    ConfigError,
    InternalError,
    InvalidField,
    ProtocolError,
    RateLimited,
    StorageError,
    TooLarge,
    TransportError,
    Unavailable,
)
from device_runtime.ports.cpython.transport import disable_nagle
from fleet_platform import device_requests, device_topics
from fleet_platform.bounded_mqtt import BoundedClient
from fleet_platform.broker_config import RECOVERY_MOUNT_POINT, max_packet_size
from fleet_platform.event_budget import EventBudget
from fleet_platform.fault_log import FaultLog
from fleet_platform.gateway_limits import GatewayLimits
from fleet_platform.health import Health
from fleet_platform.metrics import Metrics
from fleet_platform.mqtt_tls import client_context
from fleet_platform.pki import IssuedCredential
from fleet_platform.rate_limits import RateLimits
from fleet_platform.request_queue import FairQueue, Route, Work
from fleet_platform.server_replicas import shared_filters
from fleet_platform.storage import Database, StorageConflict

log = logging.getLogger(__name__)

Body = dict[str, Any]


_KNOWN_TOPICS = 200_000
"""Up topics whose device id has been checked; older ones are checked again when seen."""
_CONNECT_TIMEOUT_S = 10.0
_RECONNECT_MAX_S = 5
STALLED_S = 5.0
"""A batch in service, or a request waiting, this long means the gateway is stuck."""
_CONFLICT_RETRIES = 2
"""Times a batch that lost a race with another gateway is tried again whole."""
_STORAGE_WARNING_EVERY_S = 10.0
_STORAGE_FAILURES_BEFORE_OUTAGE = 2
"""Consecutive storage failures after which the rest of a batch is answered ``unavailable``."""


@dataclass(frozen=True, slots=True)
class Request:
    """A validated request and the identity the broker authenticated for it."""

    device_id: str
    kind: str
    body: Body
    received_at: datetime
    via_recovery: bool = False
    """Came through the recovery listener: the device presented its DeviceID certificate."""


Handler = Callable[[Request, Connection], Body]
"""Serves one request inside the batch's transaction and returns the response body.

Raising a :class:`ProtocolError` answers the device with that error; what the
handler wrote before raising is committed (that is how it records why). Any
other exception is a bug: the request is answered ``internal`` and none of its
writes are kept.
"""

BatchHandler = Callable[[Sequence[Request], Connection], Sequence["Body | ProtocolError"]]
"""Serves all of a batch's requests of one kind at once (at most one per device).

Returns one outcome per request, in order: the response body, or the
:class:`ProtocolError` to answer with. For the fleet's most frequent requests a
single statement for the whole batch costs one round trip to the database
instead of one per device. An exception is a bug, as for :data:`Handler`.
"""

Decoded = protocol.Envelope | ProtocolError

Answer = tuple[Work, bytes | None, str]
"""(the request, the encoded answer or None when it has no correlation id to answer to,
the outcome's code: ``ok`` or an error code)."""

RecordRejection = Callable[[str, ProtocolError, datetime, Connection], bool]
"""(device id, the error, when, transaction) -> written?: how the owning service notes a refusal."""


class Gateway:
    """Subscribes to every device's up topic and dispatches to registered handlers."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        ca_path: Path,
        credential: IssuedCredential,
        database: Database,
        record_rejection: RecordRejection,
        client_id: str = protocol.SERVER_IDENTITY,
        share_group: str,
        prefix: str = protocol.DEFAULT_PREFIX,
        limits: GatewayLimits | None = None,
        metrics: Metrics | None = None,
        log_budget: EventBudget | None = None,
        after_commit: Callable[[frozenset[str]], None] | None = None,
    ) -> None:
        """*after_commit* runs after each batch is committed and before its answers go out,
        with the request types the batch served: what a device is told must already be in
        force (a pass's grant at the broker)."""
        self.prefix = prefix
        self._after_commit = after_commit
        self.share_group = share_group
        self.limits = limits or GatewayLimits()
        self.metrics = metrics or Metrics()
        self._database = database
        self._record_rejection = record_rejection
        self._host = host
        self._port = port
        self._handlers: dict[str, BatchHandler] = {}
        self._queue = FairQueue(
            per_device=self.limits.per_device_queue, total=self.limits.total_queue
        )
        self._rates = RateLimits(rate=self.limits.rate, burst=self.limits.burst)
        self._log_budget = log_budget or EventBudget(per_window=10, window_s=60.0)
        self._faults = FaultLog(log)
        self._workers: list[threading.Thread] = []
        self._ready = threading.Event()
        self._stopping = False
        self._served_per_s = 0.0
        self._storage_warned = -_STORAGE_WARNING_EVERY_S
        self._batch_started: dict[str, float] = {}
        """When each worker took the batch it is serving now (absent while it waits)."""
        self._routes: OrderedDict[bytes, tuple[str, Route]] = OrderedDict()
        self._client = BoundedClient(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            # The same ceiling as the managed broker's: a packet it would route is read.
            max_incoming=max_packet_size(prefix),
            on_request=self._on_request,
            on_oversized=self._on_oversized,
        )
        self._client.tls_set_context(client_context(ca_path=ca_path, credential=credential))
        self._client.on_socket_open = disable_nagle
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.reconnect_delay_set(min_delay=1, max_delay=_RECONNECT_MAX_S)

    @property
    def subscriptions(self) -> tuple[str, ...]:
        return shared_filters(self.prefix, self.share_group)

    def handle(self, kind: str, handler: Handler) -> None:
        """Route requests of *kind* to *handler*, one request at a time."""

        def one_at_a_time(
            requests: Sequence[Request], tx: Connection
        ) -> list[Body | ProtocolError]:
            outcomes: list[Body | ProtocolError] = []
            for request in requests:
                try:
                    outcomes.append(handler(request, tx))
                except ProtocolError as exc:
                    outcomes.append(exc)
            return outcomes

        self.handle_batch(kind, one_at_a_time)

    def handle_batch(self, kind: str, handler: BatchHandler) -> None:
        """Route requests of *kind* to *handler*, all of a batch's at once."""
        if kind not in protocol.RESPONSES:
            raise ConfigError(f"{kind!r} is not a request type")
        self._handlers[kind] = handler

    def start(self) -> None:
        workers = self.limits.workers or (1 if self._database.dialect == "sqlite" else 2)
        for index in range(workers):
            worker = threading.Thread(target=self._work_loop, name=f"gateway-{index}", daemon=True)
            worker.start()
            self._workers.append(worker)
        try:
            self._client.connect(self._host, self._port, keepalive=30)
        except OSError as exc:
            self.stop()
            raise TransportError(f"cannot reach the broker at {self._host}:{self._port}") from exc
        self._client.loop_start()
        if not self._ready.wait(_CONNECT_TIMEOUT_S):
            self.stop()
            raise TransportError("the broker did not accept the server's connection in time")

    def stop(self) -> None:
        self._stopping = True
        self._client.disconnect()
        self._client.loop_stop()
        self._queue.close()
        for worker in self._workers:
            worker.join(timeout=5)
        self._workers.clear()

    def health(self) -> Health:
        """Unhealthy when a worker died or is stuck, or the broker connection is down.

        A worker stuck on storage that neither answers nor fails (a table locked by
        someone else) is alive and connected, so progress is checked too: requests
        waiting while no batch has finished for a while is unhealthy.
        """
        dead = [worker.name for worker in self._workers if not worker.is_alive()]
        if dead:
            return Health(False, f"worker threads not running: {', '.join(dead)}")
        if not self._workers:
            return Health(False, "not started")
        if not self._client.is_connected():
            return Health(False, f"not connected to the broker at {self._host}:{self._port}")
        now = time.monotonic()
        serving = max((now - started for started in list(self._batch_started.values())), default=0)
        if serving > STALLED_S:
            return Health(False, f"a batch has been in service for {serving:.0f} s")
        waiting = len(self._queue)
        oldest = self._queue.oldest_wait(now)
        if oldest > STALLED_S:
            return Health(False, f"{waiting} requests waiting, the oldest for {oldest:.0f} s")
        return Health(True, f"{len(self._workers)} workers, {waiting} requests waiting")

    # -- network thread ------------------------------------------------------------

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
        # Clean session: subscriptions do not survive a reconnect, so make them again.
        # QoS 0 from the broker to us: no acknowledgement per request on either side;
        # nothing is stored across a disconnect at QoS 1 either, and a device retries
        # a request that went unanswered.
        client.subscribe([(topic, 0) for topic in self.subscriptions])
        log.info("connected to the broker at %s:%d", self._host, self._port)
        self._ready.set()

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if self._stopping:
            return
        self.metrics.count("sevenfold_gateway_disconnects_total")
        log.warning("lost the broker connection (%s); reconnecting", reason)

    def _on_request(self, topic: bytes, payload: bytes) -> None:
        """Admission only: identity from the topic, the device's rate, its place in line.

        Runs on the network thread for every message of every device, so it is the
        floor of what a flood costs the others: a few microseconds, nothing decoded.
        """
        try:
            self._admit(topic, payload)
        except Exception as exc:  # the network thread must live on
            self._faults.fault(exc, context="admitting a message", now=time.monotonic())
            self.metrics.count("sevenfold_gateway_internal_errors_total", "admission")

    def _admit(self, topic: bytes, payload: bytes) -> None:
        known = self._route_of(topic)
        if known is None:
            self.metrics.count("sevenfold_gateway_dropped_total", "bad-topic")
            return
        device_id, route = known
        now = time.monotonic()
        verdict = self._rates.check(device_id, now)
        if verdict != "allow":
            self.metrics.count("sevenfold_gateway_rate_limited_total")
            if verdict == "drop":
                self.metrics.count("sevenfold_gateway_dropped_total", "rate-limited")
                return
            wait = self._rates.retry_after_ms(device_id)
            error = RateLimited(f"over {self.limits.rate:g}/s", wait)
            self._refuse(device_id, route, payload, error)
            return
        work = Work(device_id, payload, datetime.now(UTC), now, route)
        refused = self._queue.put(work)
        if refused is not None:
            self.metrics.count("sevenfold_gateway_busy_total", refused)
            busy = Busy("server overloaded", self._busy_wait_ms())
            self._refuse(device_id, route, payload, busy)

    def _on_oversized(self, topic: bytes | None, length: int) -> None:
        """A PUBLISH over the limit was stepped over unread: count it against its sender."""
        self.metrics.count("sevenfold_gateway_dropped_total", "too-large")
        known = None if topic is None else self._route_of(topic)
        if known is None:
            return
        device_id = known[0]
        self._rates.check(device_id, time.monotonic())
        error = TooLarge(f"a {length}-byte packet, over the protocol's limit, was dropped unread")
        self._log_rejection(device_id, error)

    def _route_of(self, topic: bytes) -> tuple[str, Route] | None:
        """The device id and route of an up topic, checked once per topic and then remembered."""
        known = self._routes.get(topic)
        if known is not None:
            return known
        try:
            text = topic.decode()
            recovery = text.startswith(RECOVERY_MOUNT_POINT)
            if recovery:
                text = text[len(RECOVERY_MOUNT_POINT) :]
            device_id, plane = device_topics.route_of(self.prefix, text)
        except (UnicodeDecodeError, ProtocolError):
            return None
        if recovery and plane != protocol.ATTESTATION_PLANE:
            return None  # the broker grants nothing else there; a topic like this is not ours
        known = (device_id, (plane, recovery))
        self._routes[topic] = known
        if len(self._routes) > _KNOWN_TOPICS:
            self._routes.popitem(last=False)
        return known

    def _refuse(self, device_id: str, route: Route, payload: bytes, error: ProtocolError) -> None:
        """Answer without serving; the request itself was never looked at."""
        correlation = device_requests.correlation_of(payload)
        if correlation is None:
            self.metrics.count("sevenfold_gateway_dropped_total", "no-correlation")
            return
        self.metrics.count("sevenfold_gateway_answers_total", error.code)
        answer = protocol.encode("error", correlation, device_requests.error_body(error))
        self._publish(device_id, route, answer)

    def _busy_wait_ms(self) -> int:
        """Roughly how long the queue takes to drain at the recent pace."""
        rate = max(self._served_per_s, 1.0)
        wait = int(len(self._queue) / rate * 1000)
        return min(max(wait, self.limits.busy_retry_min_ms), self.limits.busy_retry_max_ms)

    # -- workers ---------------------------------------------------------------------

    def _work_loop(self) -> None:
        name = threading.current_thread().name
        while (batch := self._queue.take(limit=self.limits.batch, timeout=1.0)) is not None:
            if not batch:
                continue
            started = time.monotonic()
            self._batch_started[name] = started
            try:
                self._serve(batch)
            except Exception as exc:  # the last line of defence: the worker must live on
                self._faults.fault(exc, context="serving a batch", now=time.monotonic())
                self.metrics.count("sevenfold_gateway_internal_errors_total")
            finally:
                del self._batch_started[name]
                self._queue.done(batch)
            elapsed = max(time.monotonic() - started, 1e-6)
            self._served_per_s = 0.8 * self._served_per_s + 0.2 * (len(batch) / elapsed)

    def _serve(self, batch: list[Work]) -> None:
        decoded = [(work, self._decode(work)) for work in batch]
        answers: list[Answer] | None = None
        for attempt in range(_CONFLICT_RETRIES + 1):
            try:
                with self._database.transaction("serve requests") as tx:
                    answers = self._answers(decoded, tx)
                break
            except StorageConflict:
                # Another gateway held rows this batch needed; nothing was written.
                self.metrics.count("sevenfold_gateway_batch_retries_total", "conflict")
                if attempt == _CONFLICT_RETRIES:
                    answers = self._serve_one_by_one(decoded)
            except _Unexpected:
                self.metrics.count("sevenfold_gateway_batch_retries_total", "fault")
                answers = self._serve_one_by_one(decoded)
                break
            except StorageError as exc:
                self.metrics.count("sevenfold_gateway_batch_retries_total", "storage")
                self._storage_warning(len(batch), exc)
                answers = self._serve_one_by_one(decoded)
                break
        assert answers is not None
        if self._after_commit is not None:
            kinds = frozenset(
                item.kind for _, item in decoded if isinstance(item, protocol.Envelope)
            )
            try:
                self._after_commit(kinds)
            except Exception as exc:  # the answers still go out; the periodic refresh catches up
                self._faults.fault(exc, context="after a commit", now=time.monotonic())
                self.metrics.count("sevenfold_gateway_internal_errors_total", "after-commit")
        done = time.monotonic()
        # Counted here, once each, whichever attempt produced the answer.
        for work, payload, code in answers:
            if payload is None:
                self.metrics.count("sevenfold_gateway_dropped_total", "no-correlation")
                continue
            self.metrics.count("sevenfold_gateway_answers_total", code)
            self._publish(work.device_id, work.route, payload)
        self.metrics.observe_latency(done - work.received_mono for work, _, _ in answers)

    def _storage_warning(self, size: int, error: StorageError) -> None:
        """One line per outage every few seconds, not one per batch."""
        now = time.monotonic()
        if now - self._storage_warned >= _STORAGE_WARNING_EVERY_S:
            self._storage_warned = now
            log.warning("storage failed for a batch of %d: %s", size, error.reason)

    def _serve_one_by_one(self, decoded: list[tuple[Work, Decoded]]) -> list[Answer]:
        """Each request in a transaction of its own, so a fault stays with its request."""
        answers: list[Answer] = []
        failures = 0
        for work, item in decoded:
            if failures >= _STORAGE_FAILURES_BEFORE_OUTAGE:
                answers.append(self._error(work, item, Unavailable("storage unavailable", 2000)))
                continue
            try:
                with self._database.transaction("serve a request") as tx:
                    answers.extend(self._answers([(work, item)], tx))
                failures = 0
            except _Unexpected as fault:
                self._faults.fault(
                    fault.error, context=f"serving {fault.kind}", now=time.monotonic()
                )
                self.metrics.count("sevenfold_gateway_internal_errors_total", fault.kind)
                failure = InternalError(f"{fault.kind} failed on the server; try again later")
                answers.append(self._error(work, item, failure))
            except StorageError:
                failures += 1
                answers.append(self._error(work, item, Unavailable("storage unavailable", 2000)))
        return answers

    def _decode(self, work: Work) -> Decoded:
        try:
            envelope = device_requests.decode_request(work.payload, work.device_id, work.route[0])
        except ProtocolError as exc:
            return exc
        if envelope.kind not in self._handlers:
            return InvalidField(f"{envelope.kind!r} is not served here")
        return envelope

    def _answers(self, decoded: list[tuple[Work, Decoded]], tx: Connection) -> list[Answer]:
        """Serve every request of a batch inside *tx*: each kind's requests in one call.

        Within a kind, devices are served in the order of their ids, so that two
        gateways touching the same devices take their rows in the same order.
        """
        answers: list[Answer] = []
        by_kind: dict[str, list[tuple[Work, protocol.Envelope]]] = {}
        for work, item in decoded:
            if isinstance(item, ProtocolError):
                answers.append(self._reject(work, item, tx))
            else:
                by_kind.setdefault(item.kind, []).append((work, item))
        for kind, items in by_kind.items():
            items.sort(key=lambda pair: pair[0].device_id)
            requests = [
                Request(work.device_id, kind, envelope.body, work.received_at, work.route[1])
                for work, envelope in items
            ]
            try:
                outcomes = self._handlers[kind](requests, tx)
            except SQLAlchemyError:
                raise
            except Exception as exc:
                raise _Unexpected(kind, exc) from exc
            if len(outcomes) != len(requests):
                raise _Unexpected(kind, RuntimeError("a batch handler lost track of a request"))
            for (work, envelope), outcome in zip(items, outcomes, strict=True):
                answers.append(self._outcome(work, envelope, outcome, tx))
        return answers

    def _outcome(
        self, work: Work, envelope: protocol.Envelope, outcome: Body | ProtocolError, tx: Connection
    ) -> Answer:
        if isinstance(outcome, ProtocolError):
            return self._reject(work, outcome, tx, correlation=envelope.correlation)
        try:
            answer = protocol.encode(
                protocol.RESPONSES[envelope.kind], envelope.correlation, outcome
            )
        except ProtocolError as exc:
            raise _Unexpected(envelope.kind, exc) from exc
        return work, answer, "ok"

    def _reject(
        self,
        work: Work,
        error: ProtocolError,
        tx: Connection,
        *,
        correlation: bytes | None = None,
    ) -> Answer:
        if self._record_rejection(work.device_id, error, work.received_at, tx):
            self._log_rejection(work.device_id, error)
        return self._error(work, None, error, correlation=correlation)

    def _error(
        self,
        work: Work,
        item: protocol.Envelope | ProtocolError | None,
        error: ProtocolError,
        *,
        correlation: bytes | None = None,
    ) -> Answer:
        if correlation is None:
            correlation = (
                item.correlation
                if isinstance(item, protocol.Envelope)
                else device_requests.correlation_of(work.payload)
            )
        if correlation is None:
            return work, None, error.code
        return (
            work,
            protocol.encode("error", correlation, device_requests.error_body(error)),
            error.code,
        )

    def _log_rejection(self, device_id: str, error: ProtocolError) -> None:
        admitted, suppressed = self._log_budget.admit(device_id, time.monotonic())
        if suppressed:
            log.warning("%d more rejections from %s were not logged", suppressed, device_id)
        if admitted:
            log.warning("rejected a message from %s: %s", device_id, error.explain())

    def push(self, device_id: str, kind: str, body: Body) -> None:
        """An unsolicited message to *device_id* on its attestation plane, wherever it is
        connected (fleet or recovery listener); ``attest-now`` is the one kind sent so."""
        payload = protocol.encode(kind, self._fresh_correlation(), body)
        for recovery in (False, True):
            self._publish(device_id, (protocol.ATTESTATION_PLANE, recovery), payload)

    @staticmethod
    def _fresh_correlation() -> bytes:
        return secrets.token_bytes(protocol.CORRELATION_BYTES)

    def _publish(self, device_id: str, route: Route, payload: bytes) -> None:
        """Answers go out at QoS 0: a lost one is a timeout the device retries anyway,
        and QoS 1 would add an acknowledgement per answer on both sides of the broker.
        An answer takes the route its request came by."""
        plane, recovery = route
        topic = device_topics.down_topic(plane, self.prefix, device_id)
        if recovery:
            topic = RECOVERY_MOUNT_POINT + topic
        info = self._client.publish(topic, payload, qos=0)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            self.metrics.count("sevenfold_gateway_dropped_total", "publish-failed")


class _Unexpected(Exception):
    """A handler failed in a way no device should be able to cause: a bug."""

    def __init__(self, kind: str, error: Exception) -> None:
        super().__init__(f"{kind}: {type(error).__name__}")
        self.kind = kind
        self.error = error
