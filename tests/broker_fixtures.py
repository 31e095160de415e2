"""Pytest plugin: the fleet CA, a session-wide mutual-TLS Mosquitto, and MQTT clients for it.

Register with ``pytest_plugins = ["tests.broker_fixtures"]`` in tests/conftest.py.
The broker is a real mosquitto process on free loopback ports (its fleet and
recovery listeners); tests that need it are skipped (failed in strict mode)
only when the binary is absent. Its recovery listener trusts the session's
``manufacturer_ca``. A device id has the application plane only once a test
grants it (``grant``), as the server would after attestation.
"""

from __future__ import annotations

import queue
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from fleet_platform.broker import MosquittoBroker
from fleet_platform.broker_config import recovery_topic
from fleet_platform.pki import CertificateAuthority, IssuedCredential
from fleet_platform.server_replicas import replica_identities
from tests.components import binary

WAIT = 5.0
SESSION_BROKER_REPLICAS = 2
"""Server identities the session broker accepts: replicas 0 and 1 (see server_replicas)."""

IssueCredential = Callable[[str], IssuedCredential]
Grant = Callable[..., None]


class MqttSession:
    """A paho MQTT 3.1.1 client over TLS whose broker replies can be awaited with a timeout."""

    def __init__(self, *, host: str, port: int, context: ssl.SSLContext, client_id: str) -> None:
        self.host = host
        self.port = port
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=MQTTProtocolVersion.MQTTv311,
            reconnect_on_failure=False,
        )
        self.client.tls_set_context(context)
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.connect_error: BaseException | None = None
        self.connack: ReasonCode | None = None
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self._subacks: dict[int, list[int]] = {}
        self._suback_arrived = threading.Condition()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe

    def open(self, *, username: str | None = None) -> MqttSession:
        """Connect and start the network loop; a refused TLS handshake is recorded, not raised."""
        if username is not None:
            self.client.username_pw_set(username)
        try:
            self.client.connect(self.host, self.port, keepalive=30)
        except (OSError, ssl.SSLError) as exc:
            self.connect_error = exc
            self.disconnected.set()
            return self
        self.client.loop_start()
        return self

    def accepted(self, timeout: float = WAIT) -> bool:
        """True once CONNACK accepted the session; False when refused or closed first."""
        if self.connect_error is not None:
            return False
        deadline = time.monotonic() + timeout
        while not (self.connected.is_set() or self.disconnected.is_set()):
            if time.monotonic() >= deadline:
                break
            self.connected.wait(0.02)
        return self.connected.is_set()

    def subscribe(self, topic: str, qos: int = 1) -> list[int]:
        """Reason code values from the SUBACK (0-2 granted QoS, 0x80 refused)."""
        result, mid = self.client.subscribe(topic, qos)
        assert result == mqtt.MQTT_ERR_SUCCESS and mid is not None, f"not sent: {result}"
        with self._suback_arrived:
            arrived = self._suback_arrived.wait_for(lambda: mid in self._subacks, timeout=WAIT)
            assert arrived, f"no SUBACK for {topic}"
            return self._subacks.pop(mid)

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        """Publish and wait for the broker's PUBACK, so the broker has routed it on return."""
        info = self.client.publish(topic, payload, qos=qos)
        info.wait_for_publish(timeout=WAIT)
        assert info.is_published(), f"no PUBACK for {topic}"

    def receive(self, timeout: float = WAIT) -> tuple[str, bytes] | None:
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        if self.connected.is_set():
            self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, code: ReasonCode, properties: Any
    ) -> None:
        self.connack = code
        if not code.is_failure:
            self.connected.set()

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, code: ReasonCode, properties: Any
    ) -> None:
        self.disconnected.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self.messages.put((message.topic, bytes(message.payload)))

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, codes: list[ReasonCode], properties: Any
    ) -> None:
        with self._suback_arrived:
            self._subacks[mid] = [code.value for code in codes]
            self._suback_arrived.notify_all()


OpenSession = Callable[..., MqttSession]


def delivered_on_recovery(topic: str) -> tuple[str, ...]:
    """Names a recovery-listener client may get a message on its *topic* under.

    Mosquitto is to strip the mount point from what it delivers there;
    2.0.11 leaves it on (eclipse-mosquitto/mosquitto#2244, fixed in 2.0.12),
    so a board must accept both and so do the tests.
    """
    return topic, recovery_topic(topic)


def session_to(
    broker: MosquittoBroker,
    credential: IssuedCredential,
    *,
    client_id: str,
    recovery: bool = False,
) -> MqttSession:
    """An MqttSession opened to *broker*, its recovery listener if *recovery*; caller closes it."""
    return MqttSession(
        host=broker.host,
        port=broker.recovery_port if recovery else broker.port,
        context=broker.client_context(credential),
        client_id=client_id,
    ).open()


@pytest.fixture(scope="session")
def fleet_ca(tmp_path_factory: pytest.TempPathFactory) -> CertificateAuthority:
    """One CA per test session, as a real fleet has one trust anchor."""
    return CertificateAuthority.create(
        common_name="Sevenfold Test Fleet CA", directory=tmp_path_factory.mktemp("fleet-ca")
    )


@pytest.fixture(scope="session")
def manufacturer_ca(tmp_path_factory: pytest.TempPathFactory) -> CertificateAuthority:
    """A board manufacturer's CA: what the session broker's recovery listener trusts."""
    return CertificateAuthority.create(
        common_name="Sevenfold Test Manufacturer CA",
        directory=tmp_path_factory.mktemp("manufacturer-ca"),
    )


@pytest.fixture(scope="session")
def mtls_broker(
    fleet_ca: CertificateAuthority,
    manufacturer_ca: CertificateAuthority,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[MosquittoBroker]:
    """A started broker shared by the session; start-up costs a process launch and a handshake."""
    executable = binary("mosquitto")
    with MosquittoBroker.start(
        directory=tmp_path_factory.mktemp("broker"),
        authority=fleet_ca,
        server_identities=replica_identities(SESSION_BROKER_REPLICAS),
        manufacturer_cas=[manufacturer_ca.cert_path.read_bytes()],
        mosquitto=executable,
    ) as broker:
        yield broker


@pytest.fixture(scope="session")
def _session_grants() -> set[str]:
    """Device ids the session broker grants now: the union of every running test's grants."""
    return set()


@pytest.fixture
def grant(mtls_broker: MosquittoBroker, _session_grants: set[str]) -> Iterator[Grant]:
    """Callable giving device ids the application plane on ``mtls_broker``, at once.

    Call as ``grant("dev-a", "dev-b")`` before the devices connect (a reload
    is done long before a TLS handshake is); the grants end with the test.
    """
    added: set[str] = set()

    def grant_ids(*device_ids: str) -> None:
        added.update(device_ids)
        _session_grants.update(device_ids)
        mtls_broker.apply_grants(_session_grants)

    yield grant_ids
    if added:
        _session_grants.difference_update(added)
        mtls_broker.apply_grants(_session_grants)


StartBroker = Callable[..., MosquittoBroker]


@pytest.fixture
def start_broker(fleet_ca: CertificateAuthority, tmp_path: Path) -> Iterator[StartBroker]:
    """Callable starting a broker of its own in ``tmp_path / "broker"``; all stopped afterwards.

    Call as ``start_broker(listen=..., log_limit=...)``: any option of
    ``MosquittoBroker.start`` besides the CA and the executable.
    """
    executable = binary("mosquitto")
    started: list[MosquittoBroker] = []

    def start(**options: Any) -> MosquittoBroker:
        options.setdefault("directory", tmp_path / "broker")
        broker = MosquittoBroker.start(authority=fleet_ca, mosquitto=executable, **options)
        started.append(broker)
        return broker

    yield start
    for broker in started:
        broker.stop()


@pytest.fixture
def client_credentials(fleet_ca: CertificateAuthority, tmp_path: Path) -> IssueCredential:
    """Callable issuing a short-lived client certificate and key for a given CN."""

    def issue(common_name: str) -> IssuedCredential:
        return fleet_ca.issue_client(
            common_name=common_name, directory=tmp_path / "credentials", days=1
        )

    return issue


@pytest.fixture
def mqtt_session(mtls_broker: MosquittoBroker) -> Iterator[OpenSession]:
    """Callable opening an MqttSession to ``mtls_broker``; every session is closed afterwards.

    Call as ``mqtt_session(credential, client_id="x")``, or pass ``context=`` to
    connect with hand-made TLS settings (no certificate, foreign CA, ...), and
    ``recovery=True`` for the recovery listener.
    """
    sessions: list[MqttSession] = []

    def open_session(
        credential: IssuedCredential | None = None,
        *,
        client_id: str,
        context: ssl.SSLContext | None = None,
        username: str | None = None,
        recovery: bool = False,
    ) -> MqttSession:
        if context is None:
            assert credential is not None, "give a credential or a TLS context"
            context = mtls_broker.client_context(credential)
        port = mtls_broker.recovery_port if recovery else mtls_broker.port
        session = MqttSession(
            host=mtls_broker.host, port=port, context=context, client_id=client_id
        )
        sessions.append(session)
        return session.open(username=username)

    yield open_session
    for session in sessions:
        session.close()
