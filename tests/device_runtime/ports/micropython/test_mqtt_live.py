"""The MicroPython transport port in a real ``micropython`` process, over real mutual TLS.

The device side runs as mpy-cross bytecode with a 64 KiB heap, the way
firmware ships it. Against the fleet's Mosquitto it must complete a round trip
with a server identity, keep an idle session alive, and fail cleanly (a
``TransportError``, not a crash) with a foreign certificate or a broker name
mismatch. Hostile broker behaviour that Mosquitto never shows (refusals,
malformed, oversized or truncated packets, silence) comes from a scripted peer
that speaks real TLS with the fleet's certificates.
"""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from device_runtime.core import protocol
from firmware_images.micropython_bundle import build
from fleet_platform.broker import MosquittoBroker
from fleet_platform.broker_config import recovery_topic
from fleet_platform.pki import CertificateAuthority, IssuedCredential
from tests.broker_fixtures import (
    Grant,
    IssueCredential,
    MqttSession,
    OpenSession,
    delivered_on_recovery,
)
from tests.components import binary, free_port

REPO = Path(__file__).resolve().parents[4]
HEAP = "heapsize=64K"
PREFIX = "sevenfold"
DEVICE = "dev-a"
RUN_TIMEOUT = 30

# Runs under MicroPython: performs the steps of a JSON plan, one output line each.
DEVICE_SCRIPT = """
import json
import sys

from device_runtime.core.errors import TransportError
from device_runtime.ports.micropython.transport import MqttTransport


def step(transport, action):
    name = action[0]
    if name == "connect":
        transport.connect()
        return "connected"
    if name == "subscribe":
        transport.subscribe(action[1])
        return "subscribed " + action[1]
    if name == "publish":
        transport.publish(action[1], action[2].encode())
        return "published " + action[1]
    if name == "poll":
        got = transport.poll(action[1])
        if got is None:
            return "none"
        return "message " + got[0] + " " + got[1].decode()
    transport.close()
    return "closed"


def main(path):
    with open(path) as handle:
        plan = json.load(handle)
    transport = MqttTransport(**plan["transport"])
    for action in plan["steps"]:
        try:
            print(step(transport, action))
        except TransportError as exc:
            print("error " + exc.explain())
            return


main(sys.argv[1])
"""


def up(device: str) -> str:
    return f"{PREFIX}/d/{device}/up"


def down(device: str) -> str:
    return f"{PREFIX}/d/{device}/down"


@pytest.fixture(scope="module")
def bytecode(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The port compiled with mpy-cross: compiling source would not fit a 64 KiB heap."""
    binary("micropython")
    tree = tmp_path_factory.mktemp("mpy")
    build(root=REPO, out=tree)
    return tree


class Device:
    """A micropython process running DEVICE_SCRIPT over one plan."""

    def __init__(self, *, bytecode: Path, directory: Path, transport: dict, steps: list) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        script = directory / "device.py"
        script.write_text(DEVICE_SCRIPT, encoding="utf-8")
        plan = directory / "plan.json"
        plan.write_text(json.dumps({"transport": transport, "steps": steps}), encoding="utf-8")
        self.process = subprocess.Popen(
            [binary("micropython"), "-X", HEAP, str(script), str(plan)],
            cwd=directory,
            env={"MICROPYPATH": f"{bytecode}:.frozen", "PATH": "/usr/bin:/bin"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def lines(self) -> list[str]:
        """Output lines once the process ended; a crash (traceback, non-zero exit) fails."""
        try:
            out, err = self.process.communicate(timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, err = self.process.communicate()
            raise AssertionError(f"device did not finish:\n{out}\n{err}") from None
        assert self.process.returncode == 0, f"device crashed:\n{out}\n{err}"
        assert err == "", err
        return out.splitlines()


def transport_settings(
    *, port: int, ca_path: Path, credential: IssuedCredential, **extra: object
) -> dict:
    settings = {
        "host": "127.0.0.1",
        "port": port,
        "client_id": DEVICE,
        "ca_path": str(ca_path),
        "cert_path": str(credential.cert_path),
        "key_path": str(credential.key_path),
    }
    settings.update(extra)
    return settings


def listening_server(
    mqtt_session: OpenSession, client_credentials: IssueCredential, grant: Grant, client_id: str
) -> MqttSession:
    """A session with the server's identity, subscribed to the device's up topic (granted)."""
    grant(DEVICE)
    server = mqtt_session(client_credentials("sevenfold-server"), client_id=client_id)
    assert server.accepted()
    assert server.subscribe(up(DEVICE)) == [1]
    return server


def device_on(
    broker: MosquittoBroker,
    *,
    bytecode: Path,
    client_credentials: IssueCredential,
    directory: Path,
    steps: list,
    **extra: object,
) -> Device:
    """A device with its own certificate running *steps* against *broker*."""
    return Device(
        bytecode=bytecode,
        directory=directory,
        transport=transport_settings(
            port=broker.port,
            ca_path=broker.ca_path,
            credential=client_credentials(DEVICE),
            **extra,
        ),
        steps=steps,
    )


def test_round_trip_with_the_server_through_mosquitto(
    bytecode: Path,
    mtls_broker: MosquittoBroker,
    client_credentials: IssueCredential,
    mqtt_session: OpenSession,
    grant: Grant,
    tmp_path: Path,
) -> None:
    server = listening_server(mqtt_session, client_credentials, grant, "server-live")
    device = device_on(
        mtls_broker,
        bytecode=bytecode,
        client_credentials=client_credentials,
        directory=tmp_path / "device",
        keepalive=1,
        steps=[
            ["connect"],
            ["subscribe", down(DEVICE)],
            # Idle past the 1 s keepalive: only PINGREQs keep Mosquitto from dropping us.
            ["poll", 2000],
            ["publish", up(DEVICE), "hello from micropython"],
            ["poll", 10000],
            ["close"],
        ],
    )
    assert server.receive(timeout=RUN_TIMEOUT) == (up(DEVICE), b"hello from micropython")
    server.publish(down(DEVICE), b"hello device")
    assert device.lines() == [
        "connected",
        f"subscribed {down(DEVICE)}",
        "none",
        f"published {up(DEVICE)}",
        f"message {down(DEVICE)} hello device",
        "closed",
    ]


def test_a_board_on_the_recovery_listener_gets_its_answers_whatever_their_topic(
    bytecode: Path,
    mtls_broker: MosquittoBroker,
    manufacturer_ca: CertificateAuthority,
    client_credentials: IssueCredential,
    mqtt_session: OpenSession,
    tmp_path: Path,
) -> None:
    """Mosquitto 2.0.11 delivers a recovery-listener message with its mount point left on the
    topic (``recovery/``, 9 bytes more; its bug 2244): the client must pass it on intact,
    and read the packets after it, since the agent matches answers by correlation id."""
    board = "board-recovery"
    att_up = protocol.topic(PREFIX, board, "att/up")
    att_down = protocol.topic(PREFIX, board, "att/down")
    server = mqtt_session(client_credentials(protocol.SERVER_IDENTITY), client_id="srv-recovery")
    assert server.accepted()
    assert server.subscribe(recovery_topic(att_up)) == [1]
    credential = manufacturer_ca.issue_client(
        common_name=board, directory=tmp_path / "board", days=1
    )
    device = Device(
        bytecode=bytecode,
        directory=tmp_path / "device",
        transport=transport_settings(
            port=mtls_broker.recovery_port,
            ca_path=mtls_broker.ca_path,
            credential=credential,
            client_id=board,
        ),
        steps=[
            ["connect"],
            ["subscribe", att_down],
            ["publish", att_up, "challenge please"],
            ["poll", 10000],
            ["poll", 10000],
            ["close"],
        ],
    )
    assert server.receive(timeout=RUN_TIMEOUT) == (recovery_topic(att_up), b"challenge please")
    server.publish(recovery_topic(att_down), b"first answer")
    server.publish(recovery_topic(att_down), b"second answer")
    lines = device.lines()
    assert lines[:3] == ["connected", f"subscribed {att_down}", f"published {att_up}"], lines
    assert lines[5:] == ["closed"], lines
    for line, payload in zip(lines[3:5], ("first answer", "second answer"), strict=True):
        kind, topic, text = line.split(" ", 2)
        assert (kind, text) == ("message", payload), line
        assert topic in delivered_on_recovery(att_down), line


def test_subscriptions_are_restored_on_every_connect(
    bytecode: Path,
    mtls_broker: MosquittoBroker,
    client_credentials: IssueCredential,
    mqtt_session: OpenSession,
    grant: Grant,
    tmp_path: Path,
) -> None:
    """A clean session forgets subscriptions; connecting again must subscribe again."""
    server = listening_server(mqtt_session, client_credentials, grant, "server-again")
    device = device_on(
        mtls_broker,
        bytecode=bytecode,
        client_credentials=client_credentials,
        directory=tmp_path / "device",
        steps=[
            ["connect"],
            ["subscribe", down(DEVICE)],
            ["close"],
            ["connect"],
            ["publish", up(DEVICE), "back"],
            ["poll", 10000],
            ["close"],
        ],
    )
    assert server.receive(timeout=RUN_TIMEOUT) == (up(DEVICE), b"back")
    server.publish(down(DEVICE), b"welcome back")
    assert device.lines() == [
        "connected",
        f"subscribed {down(DEVICE)}",
        "closed",
        "connected",
        f"published {up(DEVICE)}",
        f"message {down(DEVICE)} welcome back",
        "closed",
    ]


def test_another_devices_down_topic_never_reaches_the_device(
    bytecode: Path,
    mtls_broker: MosquittoBroker,
    client_credentials: IssueCredential,
    mqtt_session: OpenSession,
    grant: Grant,
    tmp_path: Path,
) -> None:
    server = listening_server(mqtt_session, client_credentials, grant, "server-spy")
    device = device_on(
        mtls_broker,
        bytecode=bytecode,
        client_credentials=client_credentials,
        directory=tmp_path / "device",
        steps=[
            ["connect"],
            ["subscribe", down("dev-b")],
            ["publish", up(DEVICE), "ready"],
            ["poll", 1500],
            ["close"],
        ],
    )
    assert server.receive(timeout=RUN_TIMEOUT) == (up(DEVICE), b"ready")
    server.publish(down("dev-b"), b"for dev-b only")
    lines = device.lines()
    # Mosquitto's acl_file grants every SUBSCRIBE and filters at delivery; a
    # broker that refuses instead (SUBACK 0x80) must surface as TransportError.
    refused = f"error transport: broker refused the subscription to {down('dev-b')}"
    assert lines in (
        ["connected", refused],
        ["connected", f"subscribed {down('dev-b')}", f"published {up(DEVICE)}", "none", "closed"],
    )


@pytest.mark.parametrize("case", ["foreign-ca", "wrong-broker-name"])
def test_untrusted_tls_is_a_transport_error(
    case: str,
    bytecode: Path,
    mtls_broker: MosquittoBroker,
    client_credentials: IssueCredential,
    tmp_path: Path,
) -> None:
    if case == "foreign-ca":
        foreign = CertificateAuthority.create(
            common_name="Foreign CA", directory=tmp_path / "foreign-ca"
        )
        credential = foreign.issue_client(common_name=DEVICE, directory=tmp_path / "foreign")
        extra: dict[str, object] = {}
    else:
        credential = client_credentials(DEVICE)
        extra = {"server_hostname": "not-the-broker.example"}
    device = Device(
        bytecode=bytecode,
        directory=tmp_path / "device",
        transport=transport_settings(
            port=mtls_broker.port, ca_path=mtls_broker.ca_path, credential=credential, **extra
        ),
        steps=[["connect"]],
    )
    [line] = device.lines()
    if case == "foreign-ca":
        assert line.startswith("error transport: "), line
        assert "TLS handshake" in line or "closed the connection" in line, line
    else:
        assert line.startswith("error transport: TLS handshake with the broker failed: "), line
        assert "CN" in line, line


def test_every_anchor_of_a_ca_bundle_is_trusted(
    bytecode: Path,
    mtls_broker: MosquittoBroker,
    client_credentials: IssueCredential,
    tmp_path: Path,
) -> None:
    other = CertificateAuthority.create(common_name="Next Fleet CA", directory=tmp_path / "next")
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(other.cert_path.read_bytes() + mtls_broker.ca_path.read_bytes())
    device = Device(
        bytecode=bytecode,
        directory=tmp_path / "device",
        transport=transport_settings(
            port=mtls_broker.port, ca_path=bundle, credential=client_credentials(DEVICE)
        ),
        steps=[["connect"], ["close"]],
    )
    assert device.lines() == ["connected", "closed"]


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("missing-key", "cannot read the device key "),
        ("unterminated-ca", "CA certificate: PEM block without END line"),
        ("ca-not-a-certificate", "TLS credentials rejected: invalid cert"),
        ("key-is-a-certificate", "TLS credentials rejected: invalid key"),
    ],
)
def test_unusable_credentials_are_a_transport_error(
    case: str, reason: str, bytecode: Path, client_credentials: IssueCredential, tmp_path: Path
) -> None:
    credential = client_credentials(DEVICE)
    ca_path = tmp_path / "ca.pem"
    ca_path.write_bytes(credential.cert_path.read_bytes())
    extra: dict[str, object] = {}
    if case == "missing-key":
        extra["key_path"] = str(tmp_path / "absent.key")
    elif case == "unterminated-ca":
        ca_path.write_bytes(b"-----BEGIN CERTIFICATE-----\nMIIB\n")
    elif case == "ca-not-a-certificate":
        ca_path.write_bytes(b"-----BEGIN CERTIFICATE-----\nMAMCAQA=\n-----END CERTIFICATE-----\n")
    else:
        extra["key_path"] = str(credential.cert_path)
    device = Device(
        bytecode=bytecode,
        directory=tmp_path / "device",
        transport=transport_settings(
            port=free_port(), ca_path=ca_path, credential=credential, **extra
        ),
        steps=[["connect"]],
    )
    [line] = device.lines()
    assert line.startswith(f"error transport: {reason}"), line


class ScriptedPeer:
    """A one-connection TLS server that answers each client packet with the next reply.

    When the replies run out it closes the connection, or with *linger* keeps
    reading until the client goes away. Every packet the client sent is kept.
    """

    def __init__(
        self, *, authority: CertificateAuthority, directory: Path, replies: list, linger: bool
    ) -> None:
        credential = authority.issue_server(
            common_name="scripted-peer", hosts=["127.0.0.1", "localhost"], directory=directory
        )
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(str(credential.cert_path), str(credential.key_path))
        self.context.load_verify_locations(cafile=str(authority.cert_path))
        self.context.verify_mode = ssl.CERT_REQUIRED
        self.replies = list(replies)
        self.linger = linger
        self.received: list[bytes] = []
        self.failure: BaseException | None = None
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(RUN_TIMEOUT)
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            raw, _ = self.listener.accept()
            with self.context.wrap_socket(raw, server_side=True) as tls:
                tls.settimeout(RUN_TIMEOUT)
                while self.replies or self.linger:
                    packet = self._read_packet(tls)
                    if packet is None:
                        return
                    self.received.append(packet)
                    if self.replies:
                        tls.sendall(self.replies.pop(0))
        except (OSError, ssl.SSLError) as exc:
            self.failure = exc
        finally:
            self.listener.close()

    @staticmethod
    def _read_exact(tls: ssl.SSLSocket, n: int) -> bytes | None:
        data = b""
        while len(data) < n:
            chunk = tls.recv(n - len(data))
            if not chunk:
                return None
            data += chunk
        return data

    def _read_packet(self, tls: ssl.SSLSocket) -> bytes | None:
        header = self._read_exact(tls, 1)
        if header is None:
            return None
        length = 0
        for shift in (0, 7, 14, 21):
            digit = self._read_exact(tls, 1)
            if digit is None:
                return None
            header += digit
            length |= (digit[0] & 0x7F) << shift
            if not digit[0] & 0x80:
                break
        body = self._read_exact(tls, length) if length else b""
        return None if body is None else header + body

    def join(self) -> list[bytes]:
        self.thread.join(RUN_TIMEOUT)
        assert not self.thread.is_alive(), "scripted peer still running"
        return self.received


ACCEPT = b"\x20\x02\x00\x00"


@pytest.fixture
def scripted(
    bytecode: Path,
    fleet_ca: CertificateAuthority,
    client_credentials: IssueCredential,
    tmp_path: Path,
) -> Iterator:
    """Callable running a device plan against a ScriptedPeer; returns (lines, packets)."""

    def run(replies: list, steps: list, *, linger: bool = False, **extra: object) -> tuple:
        peer = ScriptedPeer(
            authority=fleet_ca, directory=tmp_path / "peer", replies=replies, linger=linger
        )
        device = Device(
            bytecode=bytecode,
            directory=tmp_path / "device",
            transport=transport_settings(
                port=peer.port,
                ca_path=fleet_ca.cert_path,
                credential=client_credentials(DEVICE),
                **extra,
            ),
            steps=steps,
        )
        lines = device.lines()
        return lines, peer.join()

    yield run


HOSTILE = {
    "connack-not-authorized": (
        [b"\x20\x02\x00\x05"],
        [["connect"]],
        "broker refused the connection: not authorized (code 5)",
    ),
    "connack-bad-identifier": (
        [b"\x20\x02\x00\x02"],
        [["connect"]],
        "broker refused the connection: client identifier rejected (code 2)",
    ),
    "suback-refused": (
        [ACCEPT, b"\x90\x03\x00\x01\x80"],
        [["connect"], ["subscribe", down("dev-b")]],
        f"broker refused the subscription to {down('dev-b')}",
    ),
    "oversized-publish": (
        [ACCEPT + b"\x30\xff\xff\x3f"],
        [["connect"], ["poll", 5000]],
        "PUBLISH of 1048575 bytes is over the 1024-byte limit",
    ),
    "five-byte-length": (
        [ACCEPT + b"\x30\xff\xff\xff\xff\x01"],
        [["connect"], ["poll", 5000]],
        "remaining length longer than 4 bytes",
    ),
    "suback-two-codes": (
        [ACCEPT, b"\x90\x04\x00\x01\x01\x01"],
        [["connect"], ["subscribe", down(DEVICE)]],
        "SUBACK holds 2 codes for one filter",
    ),
    "puback-too-long": (
        [ACCEPT, b"\x40\x03\x00\x01\x00"],
        [["connect"], ["publish", up(DEVICE), "x"]],
        "PUBACK body must be 2 bytes, got 3",
    ),
    "qos2-publish": (
        [ACCEPT + b"\x34\x05\x00\x01t\x00\x01"],
        [["connect"], ["poll", 5000]],
        "QoS 2 PUBLISH though no subscription asked for QoS 2",
    ),
    "flood-while-awaiting-puback": (
        [ACCEPT, b"\x30\x03\x00\x01t" * 9],
        [["connect"], ["publish", up(DEVICE), "x"]],
        "over 8 messages queued unread",
    ),
    "reserved-puback-flags": (
        [ACCEPT, b"\x41\x02\x00\x01"],
        [["connect"], ["publish", up(DEVICE), "x"]],
        "reserved flag bits set in PUBACK",
    ),
    "surrogate-topic": (
        [ACCEPT + b"\x30\x05\x00\x03\xed\xa0\x80"],
        [["connect"], ["poll", 5000]],
        "string is not valid UTF-8",
    ),
    "stalled-publish": (
        [ACCEPT + b"\x30\x0a\x00\x01t"],
        [["connect"], ["poll", 5000]],
        "timed out reading the next packet from the broker",
    ),
    "unexpected-connack": (
        [ACCEPT + ACCEPT],
        [["connect"], ["poll", 5000]],
        "unexpected CONNACK from the broker",
    ),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_broker_is_a_specific_transport_error(name: str, scripted) -> None:
    replies, steps, reason = HOSTILE[name]
    lines, _ = scripted(replies, steps, linger=True, max_packet=1024, timeout_ms=500)
    assert lines[-1] == f"error transport: {reason}", lines


def test_connection_closed_inside_a_packet_is_truncation(scripted) -> None:
    lines, _ = scripted([ACCEPT + b"\x30\x0a\x00\x01t"], [["connect"], ["poll", 5000]])
    assert lines == [
        "connected",
        "error transport: truncated packet: stream ended inside the PUBLISH body",
    ]


def test_connection_closed_between_packets_is_named(scripted) -> None:
    lines, _ = scripted([ACCEPT], [["connect"], ["poll", 5000]])
    assert lines[0] == "connected"
    assert lines[1].startswith("error transport: broker closed the connection"), lines


def test_packet_larger_than_the_heap_is_a_transport_error(scripted) -> None:
    # Within the default 64 KiB max_packet, but more than a 64 KiB heap has left.
    lines, _ = scripted([ACCEPT + b"\x30\xe0\xd4\x03"], [["connect"], ["poll", 5000]], linger=True)
    assert lines == [
        "connected",
        "error transport: no heap for 60000 bytes of the next packet; lower max_packet",
    ]


def test_silent_broker_times_out(scripted) -> None:
    lines, packets = scripted([], [["connect"]], linger=True, timeout_ms=300)
    assert lines == ["error transport: timed out reading CONNACK from the broker"]
    assert packets[0].startswith(b"\x10")


def test_missing_pingresp_times_out(scripted) -> None:
    lines, packets = scripted(
        [ACCEPT], [["connect"], ["poll", 3000]], linger=True, keepalive=1, timeout_ms=300
    )
    assert lines == ["connected", "error transport: no PINGRESP from the broker in time"]
    assert packets[1:] == [b"\xc0\x00"]


def test_incoming_qos1_is_acknowledged_and_session_closed_cleanly(scripted) -> None:
    publish = b"\x32\x0c\x00\x05a/b/c\x00\x09hi!"
    lines, packets = scripted(
        [ACCEPT + publish], [["connect"], ["poll", 5000], ["close"]], linger=True
    )
    assert lines == ["connected", "message a/b/c hi!", "closed"]
    connect, puback, disconnect = packets
    assert connect == b"\x10\x11\x00\x04MQTT\x04\x02\x00\x3c\x00\x05dev-a"
    assert puback == b"\x40\x02\x00\x09"
    assert disconnect == b"\xe0\x00"
