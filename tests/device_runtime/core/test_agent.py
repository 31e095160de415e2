"""The device agent against a real broker, with a scripted fleet server on the other side.

The agent runs with the real CPython ports (paho over mutual TLS to the
session's Mosquitto, the system clock, a directory store, the OS random
source). The server side is a plain MQTT session that answers each request as
the test scripts it, so busy servers, unanswered heartbeats and their timing
can be produced on demand. The clock is the system clock with its sleeps
written down, so waits can be checked as well as felt.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from device_runtime.core import protocol
from device_runtime.core.agent import BOOT_COUNT_KEY, DeviceAgent
from device_runtime.core.errors import (
    Busy,
    RateLimited,
    RetryLater,
    StorageError,
    Unavailable,
)
from device_runtime.ports.cpython.clock import SystemClock
from device_runtime.ports.cpython.storage import DirectoryStore
from device_runtime.ports.cpython.transport import MqttTransport
from fleet_platform.broker import MosquittoBroker
from fleet_platform.device_requests import decode_request, error_body
from fleet_platform.pki import CertificateAuthority
from tests.broker_fixtures import Grant, IssueCredential, MqttSession, OpenSession
from tests.device_runtime.cpython_devices import device_agent, device_transport

DEVICE = "agent-1"
UP = protocol.topic(protocol.DEFAULT_PREFIX, DEVICE, "up")
DOWN = protocol.topic(protocol.DEFAULT_PREFIX, DEVICE, "down")


class RecordingClock(SystemClock):
    """The system clock, noting every sleep it is asked for."""

    def __init__(self) -> None:
        self.sleeps: list[int] = []

    def sleep_ms(self, ms: int) -> None:
        self.sleeps.append(ms)
        super().sleep_ms(ms)


@dataclass
class Seen:
    """A request as the server received it."""

    at: float
    kind: str
    correlation: bytes
    body: dict[str, object]


Reply = dict[str, object] | RetryLater | tuple[str, dict[str, object]] | None
Answer = Callable[[protocol.Envelope, int], Reply]
"""(request, its index among all requests) -> the response body, a RetryLater to
answer with, a (type, body) to send as it is, or None for silence."""


@dataclass
class ScriptedServer:
    """Answers the device's requests over the broker as *answer* says."""

    session: MqttSession
    answer: Answer
    seen: list[Seen] = field(default_factory=list)
    stopped: threading.Event = field(default_factory=threading.Event)

    def serve(self) -> None:
        while not self.stopped.is_set():
            received = self.session.receive(timeout=0.1)
            if received is None:
                continue
            envelope = decode_request(received[1], DEVICE)
            self.seen.append(
                Seen(time.monotonic(), envelope.kind, envelope.correlation, envelope.body)
            )
            result = self.answer(envelope, len(self.seen) - 1)
            if result is None:
                continue
            if isinstance(result, RetryLater):
                kind, body = "error", error_body(result)
            elif isinstance(result, tuple):
                kind, body = result
            else:
                kind, body = protocol.RESPONSES[envelope.kind], result
            self.session.publish(DOWN, protocol.encode(kind, envelope.correlation, body))


def ack(envelope: protocol.Envelope) -> dict[str, object]:
    """The response a fleet server would give."""
    if envelope.kind == "enroll":
        return {"heartbeat_interval": 1, "server_time": 1_700_000_000}
    return {"seq": envelope.body["seq"], "server_time": 1_700_000_000}


@dataclass
class Link:
    agent: DeviceAgent
    clock: RecordingClock
    transport: MqttTransport
    state: Path


@pytest.fixture
def link(
    mtls_broker: MosquittoBroker,
    fleet_ca: CertificateAuthority,
    client_credentials: IssueCredential,
    mqtt_session: OpenSession,
    grant: Grant,
    tmp_path: Path,
) -> Iterator[Callable[..., tuple[Link, ScriptedServer]]]:
    """Callable building an agent and a scripted server that answers it."""
    grant(DEVICE)
    servers: list[ScriptedServer] = []
    threads: list[threading.Thread] = []
    transports: list[MqttTransport] = []

    def connect(answer: Answer, **settings: int) -> tuple[Link, ScriptedServer]:
        session = mqtt_session(client_credentials("sevenfold-server"), client_id="scripted")
        assert session.accepted()
        assert session.subscribe(UP) == [1]
        server = ScriptedServer(session=session, answer=answer)
        thread = threading.Thread(target=server.serve, daemon=True)
        thread.start()
        servers.append(server)
        threads.append(thread)
        transport = device_transport(
            authority=fleet_ca, port=mtls_broker.port, device_id=DEVICE, directory=tmp_path / "dev"
        )
        transports.append(transport)
        clock = RecordingClock()
        state = tmp_path / "state"
        agent = device_agent(
            device_id=DEVICE, transport=transport, state=state, clock=clock, **settings
        )
        return Link(agent, clock, transport, state), server

    yield connect
    for server in servers:
        server.stopped.set()
    for thread in threads:
        thread.join(timeout=5)
    for transport in transports:
        transport.close()


def jitter_bounds(ms: int) -> tuple[int, int]:
    """A jittered wait lies in [ms, 1.5 ms)."""
    return ms, ms + ms // 2


@pytest.mark.parametrize(
    "stored",
    [b"", b"abc", b"-1", b" 7", b"7\n", b"1_0", b"+3", b"\xff", b"99999999999"],
    ids=repr,
)
def test_a_damaged_boot_counter_is_a_storage_error(
    stored: bytes, link: Callable[..., tuple[Link, ScriptedServer]]
) -> None:
    device, _ = link(lambda envelope, index: ack(envelope))
    DirectoryStore(directory=device.state).write(BOOT_COUNT_KEY, stored)
    with pytest.raises(StorageError) as refused:
        device.agent.boot()
    assert refused.value.reason.startswith("boot counter is damaged: "), refused.value.reason
    assert DirectoryStore(directory=device.state).read(BOOT_COUNT_KEY) == stored


def test_an_exhausted_boot_counter_is_a_storage_error(
    link: Callable[..., tuple[Link, ScriptedServer]],
) -> None:
    device, _ = link(lambda envelope, index: ack(envelope))
    DirectoryStore(directory=device.state).write(BOOT_COUNT_KEY, b"4294967295")
    with pytest.raises(StorageError, match="boot counter is exhausted: 4294967295 boots"):
        device.agent.boot()


def test_a_sound_boot_counter_counts_on(link: Callable[..., tuple[Link, ScriptedServer]]) -> None:
    device, _ = link(lambda envelope, index: ack(envelope))
    DirectoryStore(directory=device.state).write(BOOT_COUNT_KEY, b"41")
    assert device.agent.boot() == 42
    assert DirectoryStore(directory=device.state).read(BOOT_COUNT_KEY) == b"42"


@pytest.mark.parametrize("error", [Busy, RateLimited, Unavailable], ids=lambda e: e.code)
def test_retry_later_waits_as_asked_then_sends_the_same_request_again(
    error: type[RetryLater], link: Callable[..., tuple[Link, ScriptedServer]]
) -> None:
    def answer(envelope: protocol.Envelope, index: int) -> Reply:
        if index == 1:
            return error("come back later", 400)
        return ack(envelope)

    device, server = link(answer)
    device.agent.boot()
    device.agent.enroll()
    assert device.agent.heartbeat()["seq"] == 1
    first, again = server.seen[1:]
    assert (first.kind, again.kind) == ("heartbeat", "heartbeat")
    assert again.body == first.body
    assert again.correlation != first.correlation
    [wait] = device.clock.sleeps
    low, high = jitter_bounds(400)
    assert low <= wait < high
    assert again.at - first.at >= 0.4


def test_retry_later_without_a_wait_waits_a_second(
    link: Callable[..., tuple[Link, ScriptedServer]],
) -> None:
    def answer(envelope: protocol.Envelope, index: int) -> Reply:
        if index == 0:
            # An error body with no retry_after field, as an older server sends it.
            return ("error", {"code": "busy", "reason": "overloaded"})
        return ack(envelope)

    device, server = link(answer)
    device.agent.boot()
    assert device.agent.enroll()["heartbeat_interval"] == 1
    [wait] = device.clock.sleeps
    low, high = jitter_bounds(1000)
    assert low <= wait < high
    assert [seen.kind for seen in server.seen] == ["enroll", "enroll"]


def test_retry_later_gives_up_after_the_attempts(
    link: Callable[..., tuple[Link, ScriptedServer]],
) -> None:
    def answer(envelope: protocol.Envelope, index: int) -> Reply:
        if envelope.kind == "enroll":
            return ack(envelope)
        return RateLimited("slow down", 50)

    device, server = link(answer, retry_attempts=3)
    device.agent.boot()
    device.agent.enroll()
    with pytest.raises(RateLimited) as refused:
        device.agent.heartbeat()
    assert refused.value.retry_after_ms == 50
    beats = [seen for seen in server.seen if seen.kind == "heartbeat"]
    assert len(beats) == 3
    assert {seen.body["seq"] for seen in beats} == {1}
    assert len(device.clock.sleeps) == 2


def test_retry_later_past_the_deadline_is_raised_at_once(
    link: Callable[..., tuple[Link, ScriptedServer]],
) -> None:
    def answer(envelope: protocol.Envelope, index: int) -> Reply:
        if envelope.kind == "enroll":
            return ack(envelope)
        return Unavailable("database down", 5000)

    device, server = link(answer, retry_deadline_ms=1000)
    device.agent.boot()
    device.agent.enroll()
    with pytest.raises(Unavailable):
        device.agent.heartbeat()
    assert [seen.kind for seen in server.seen] == ["enroll", "heartbeat"]
    assert device.clock.sleeps == []


def test_an_unanswered_heartbeat_is_never_sent_again(
    link: Callable[..., tuple[Link, ScriptedServer]],
) -> None:
    """It may have been processed: the agent reconnects and goes on with the next seq."""

    def answer(envelope: protocol.Envelope, index: int) -> Reply:
        if envelope.kind == "heartbeat" and envelope.body["seq"] == 2:
            return None
        return ack(envelope)

    device, server = link(answer, timeout_ms=400, backoff_ms=100, backoff_cap_ms=400)
    device.agent.boot()
    device.agent.enroll()
    acknowledged: list[object] = []
    device.agent.run(beats=3, on_beat=lambda answer: acknowledged.append(answer["seq"]))
    assert acknowledged == [1, 3, 4]
    assert [seen.body["seq"] for seen in server.seen if seen.kind == "heartbeat"] == [1, 2, 3, 4]
    # Interval after beat 1, one back-off after the silence, interval after beat 3.
    interval, backoff, interval_again = device.clock.sleeps
    assert interval == interval_again == 1000
    low, high = jitter_bounds(100)
    assert low <= backoff < high


def test_back_off_doubles_with_jitter_up_to_the_cap(
    link: Callable[..., tuple[Link, ScriptedServer]],
) -> None:
    def answer(envelope: protocol.Envelope, index: int) -> Reply:
        if envelope.kind == "heartbeat" and envelope.body["seq"] <= 4:
            return None
        return ack(envelope)

    device, server = link(answer, timeout_ms=300, backoff_ms=100, backoff_cap_ms=400)
    device.agent.boot()
    device.agent.enroll()
    device.agent.run(beats=1)
    assert [seen.body["seq"] for seen in server.seen if seen.kind == "heartbeat"] == [1, 2, 3, 4, 5]
    assert len(device.clock.sleeps) == 4
    for wait, base in zip(device.clock.sleeps, (100, 200, 400, 400), strict=True):
        low, high = jitter_bounds(base)
        assert low <= wait < high, (wait, base)


def test_a_heartbeat_still_refused_after_its_retries_backs_off_and_goes_on(
    link: Callable[..., tuple[Link, ScriptedServer]],
) -> None:
    def answer(envelope: protocol.Envelope, index: int) -> Reply:
        if envelope.kind == "heartbeat" and envelope.body["seq"] == 1:
            return Busy("overloaded", 20)
        return ack(envelope)

    device, server = link(answer, retry_attempts=2, backoff_ms=100)
    device.agent.boot()
    device.agent.enroll()
    acknowledged: list[object] = []
    device.agent.run(beats=1, on_beat=lambda answer: acknowledged.append(answer["seq"]))
    assert acknowledged == [2]
    assert [seen.body["seq"] for seen in server.seen if seen.kind == "heartbeat"] == [1, 1, 2]
