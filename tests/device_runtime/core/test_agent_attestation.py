"""The agent's side of attestation against a real broker and a scripted verifier.

The agent boots through its link's recovery transport, answers the challenge
with evidence, moves to the fleet transport with the certificate it was given,
renews that pass once three quarters of its life are gone, attests at once
when the server pushes ``attest-now``, and raises a contraindicated answer.
The verifier is a plain MQTT session answering both planes as scripted, so
lifetimes of seconds and pushes at chosen moments can be produced.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from device_runtime.core import protocol
from device_runtime.core.attesting_agent import AttestingAgent
from device_runtime.core.errors import Contraindicated
from device_runtime.ports.cpython.clock import SystemClock
from device_runtime.ports.cpython.crypto import random_bytes
from device_runtime.ports.cpython.storage import DirectoryStore
from device_runtime.ports.cpython.transport import MqttTransport
from fleet_platform.broker import MosquittoBroker
from fleet_platform.device_requests import decode_request
from fleet_platform.pki import CertificateAuthority
from tests.broker_fixtures import Grant, IssueCredential, MqttSession, OpenSession
from tests.device_runtime.cpython_devices import device_transport

DEVICE = "attester-1"
PREFIX = protocol.DEFAULT_PREFIX
CERTIFICATE = b"\x30\x03\x02\x01\x00"
"""Stands in for a DER certificate: the agent hands it to its link and never parses it."""


@dataclass
class Verifier:
    """Answers ``challenge`` and ``evidence`` as scripted, heartbeats and enrolls as acked."""

    session: MqttSession
    lifetime_s: int = 3600
    refuse: bool = False
    seen: list[str] = field(default_factory=list)
    stopped: threading.Event = field(default_factory=threading.Event)

    def serve(self) -> None:
        while not self.stopped.is_set():
            received = self.session.receive(timeout=0.1)
            if received is None:
                continue
            topic, payload = received
            plane = "att" if topic.endswith("/att/up") else "app"
            envelope = decode_request(payload, DEVICE, plane)
            self.seen.append(envelope.kind)
            now = int(time.time())
            if envelope.kind == "challenge":
                body: dict[str, object] = {"nonce": b"n" * 32, "expires_in": 60}
            elif envelope.kind == "evidence":
                assert envelope.body["token"] == b"evidence for " + b"n" * 32
                body = {"status": "affirming", "code": "ok", "reason": "ok", "server_time": now}
                if self.refuse:
                    body.update(status="contraindicated", code="unendorsed-image")
                else:
                    body.update(certificate=CERTIFICATE, not_after=now + self.lifetime_s)
            elif envelope.kind == "enroll":
                body = {"heartbeat_interval": 1, "server_time": now}
            else:
                body = {"seq": envelope.body["seq"], "server_time": now}
            leaf = "att/down" if plane == "att" else "down"
            answer = protocol.encode(protocol.RESPONSES[envelope.kind], envelope.correlation, body)
            self.session.publish(protocol.topic(PREFIX, DEVICE, leaf), answer)

    def push_attest_now(self) -> None:
        self.session.publish(
            protocol.topic(PREFIX, DEVICE, "att/down"),
            protocol.encode("attest-now", b"\x00" * 8, {}),
        )


@dataclass
class FakeEvidence:
    def body(self, nonce: bytes, bootcount: int, uptime: int) -> dict[str, object]:
        return {"token": b"evidence for " + nonce}


@dataclass
class TwoTransports:
    """The link: both transports reach the session broker with fleet-CA credentials here."""

    authority: CertificateAuthority
    port: int
    directory: Path
    certificates: list[bytes] = field(default_factory=list)
    opened: list[MqttTransport] = field(default_factory=list)

    def recovery(self) -> MqttTransport:
        return self._open("recovery")

    def fleet(self, certificate: bytes) -> MqttTransport:
        self.certificates.append(certificate)
        return self._open(f"fleet-{len(self.certificates)}")

    def _open(self, name: str) -> MqttTransport:
        transport = device_transport(
            authority=self.authority, port=self.port, device_id=DEVICE,
            directory=self.directory / name,
        )  # fmt: skip
        self.opened.append(transport)
        return transport


@pytest.fixture
def scripted(
    mtls_broker: MosquittoBroker,
    fleet_ca: CertificateAuthority,
    client_credentials: IssueCredential,
    mqtt_session: OpenSession,
    grant: Grant,
    tmp_path: Path,
) -> Iterator[tuple[Verifier, TwoTransports, AttestingAgent]]:
    grant(DEVICE)
    session = mqtt_session(client_credentials("sevenfold-server"), client_id="verifier")
    assert session.accepted()
    for leaf in ("up", "att/up"):
        assert session.subscribe(protocol.topic(PREFIX, DEVICE, leaf)) == [1]
    verifier = Verifier(session=session)
    thread = threading.Thread(target=verifier.serve, daemon=True)
    thread.start()
    link = TwoTransports(authority=fleet_ca, port=mtls_broker.port, directory=tmp_path / "tls")
    agent = AttestingAgent(
        device_id=DEVICE, hwmodel="board", swname="fw", swversion="1.0.0", rot="dice",
        clock=SystemClock(), store=DirectoryStore(directory=tmp_path / "state"),
        random_bytes=random_bytes, link=link, evidence=FakeEvidence(),
    )  # fmt: skip
    yield verifier, link, agent
    verifier.stopped.set()
    thread.join(timeout=5)
    for transport in link.opened:
        transport.close()


def test_boot_attests_through_recovery_then_moves_to_the_fleet_transport(
    scripted: tuple[Verifier, TwoTransports, AttestingAgent],
) -> None:
    verifier, link, agent = scripted
    assert agent.boot() == 1
    assert verifier.seen == ["challenge", "evidence"]
    assert link.certificates == [CERTIFICATE] and agent.certificate == CERTIFICATE
    assert agent.transport is link.opened[1]  # the recovery transport was closed and left
    agent.enroll()
    agent.run(beats=2)
    assert verifier.seen[2:] == ["enroll", "heartbeat", "heartbeat"]


def test_a_pass_is_renewed_once_three_quarters_of_its_life_are_gone(
    scripted: tuple[Verifier, TwoTransports, AttestingAgent],
) -> None:
    verifier, link, agent = scripted
    verifier.lifetime_s = 4  # renew after 3 s
    agent.boot()
    agent.enroll()
    agent.run(beats=5)  # one a second
    assert verifier.seen.count("evidence") == 2, verifier.seen
    assert len(link.certificates) == 2


def test_attest_now_is_answered_before_the_next_heartbeat(
    scripted: tuple[Verifier, TwoTransports, AttestingAgent],
) -> None:
    verifier, _, agent = scripted
    agent.boot()
    agent.enroll()
    threading.Timer(1.3, verifier.push_attest_now).start()
    agent.run(beats=3)
    kinds = verifier.seen
    assert kinds.count("evidence") == 2, kinds
    assert kinds.index("evidence", 2) < len(kinds) - 1  # attested, then beat again


def test_a_contraindicated_answer_is_raised_and_no_fleet_transport_is_opened(
    scripted: tuple[Verifier, TwoTransports, AttestingAgent],
) -> None:
    verifier, link, agent = scripted
    verifier.refuse = True
    with pytest.raises(Contraindicated) as refused:
        agent.boot()
    assert refused.value.reason.startswith("unendorsed-image")
    assert link.certificates == [] and len(link.opened) == 1
