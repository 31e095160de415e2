"""Transport port for MicroPython devices: MQTT 3.1.1 over mutual TLS with the ``ssl`` module.

Same interface as the CPython port (connect, publish, subscribe, poll, close),
so the device core cannot tell them apart. The broker proves itself with the
fleet CA and must present a certificate naming *server_hostname*; the device
proves itself with its own certificate, whose CN the broker uses as its name.

MicroPython's mbedTLS build parses DER only, while the fleet hands out PEM, so
the files are converted here with ``binascii`` on every connect; reading them
afresh each time also picks up a rotated certificate without a restart. A CA
file may hold several certificates (a rotation overlap), and each is trusted.
Every wait on the broker is bounded by *timeout_ms*.

Each connect is a new TCP and TLS session with a clean MQTT session, which
has no subscriptions: the transport remembers every topic it subscribed to and
subscribes to all of them again on every connect. A connection that failed
(the client drops it on any error) or was closed can be connected again.
"""

import binascii
import gc

from device_runtime.core.errors import TransportError
from device_runtime.ports.micropython.mqtt_client import DEFAULT_TIMEOUT_MS, MqttClient

TYPE_CHECKING = False
if TYPE_CHECKING:
    from upy import ssl
else:
    import ssl

_BEGIN = b"-----BEGIN "
_END = b"-----END "


def der_blocks(data: bytes, what: str) -> "list[bytes]":
    """DER bodies of every PEM block in *data*, or *data* itself when it is already DER."""
    if data[:1] == b"\x30":
        return [data]
    blocks = []
    body: "list[bytes] | None" = None
    for raw_line in data.split(b"\n"):
        line = raw_line.strip()
        if line.startswith(_BEGIN):
            if body is not None:
                raise TransportError(what + ": PEM block opened inside another")
            body = []
        elif line.startswith(_END):
            if body is None:
                raise TransportError(what + ": PEM END line without BEGIN")
            try:
                blocks.append(binascii.a2b_base64(b"".join(body)))
            except ValueError:
                raise TransportError(what + ": PEM block is not valid base64") from None
            body = None
        elif body is not None:
            body.append(line)
    if body is not None:
        raise TransportError(what + ": PEM block without END line")
    if not blocks:
        raise TransportError(what + ": neither PEM nor DER")
    return blocks


def _read(path: str, what: str) -> bytes:
    try:
        with open(str(path), "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise TransportError(
            "cannot read the " + what + " " + str(path) + ": " + str(exc)
        ) from None


def tls_context(
    *, ca_path: str, cert_path: str, key_path: str = "", key_der: bytes = b""
) -> "ssl.SSLContext":
    """Client context that requires the broker's chain to end at the fleet CA.

    The device key comes from *key_path*, or as *key_der* when a root of trust
    holds it in memory (``link.py``), so that it never reaches the filesystem.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.verify_mode = ssl.CERT_REQUIRED
    try:
        for anchor in der_blocks(_read(ca_path, "CA certificate"), "CA certificate"):
            context.load_verify_locations(cadata=anchor)
        certificate = der_blocks(_read(cert_path, "device certificate"), "device certificate")
        key = key_der or der_blocks(_read(key_path, "device key"), "device key")[0]
        context.load_cert_chain(certificate[0], key)
    except ValueError as exc:
        raise TransportError("TLS credentials rejected: " + str(exc)) from None
    return context


class MqttTransport:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        client_id: str,
        ca_path: str,
        cert_path: str,
        key_path: str = "",
        key_der: bytes = b"",
        server_hostname: str = "localhost",
        keepalive: int = 60,
        max_packet: int = 65536,
        timeout_ms: int = DEFAULT_TIMEOUT_MS,
    ) -> None:
        self.host = host
        self.port = port
        self.client_id = client_id
        self.ca_path = ca_path
        self.cert_path = cert_path
        self.key_path = key_path
        self.key_der = key_der
        self.server_hostname = server_hostname
        self.keepalive = keepalive
        self.max_packet = max_packet
        self.timeout_ms = timeout_ms
        self._client: "MqttClient | None" = None
        self._topics: "list[str]" = []

    def connect(self) -> None:
        if self._client is not None and self._client.connected:
            raise TransportError("already connected; close first")
        self._client = None
        # A TLS context and session take a few contiguous KiB of a small heap: what the last
        # session (this one's, or the one the agent just closed) held is freed first.
        gc.collect()
        context = tls_context(
            ca_path=self.ca_path,
            cert_path=self.cert_path,
            key_path=self.key_path,
            key_der=self.key_der,
        )
        client = MqttClient(
            host=self.host,
            port=self.port,
            client_id=self.client_id,
            context=context,
            server_hostname=self.server_hostname,
            keepalive=self.keepalive,
            max_packet=self.max_packet,
            timeout_ms=self.timeout_ms,
        )
        client.connect()
        try:
            for topic in self._topics:
                client.subscribe(topic)
        except TransportError:
            client.close()
            raise
        self._client = client

    def publish(self, topic: str, payload: bytes) -> None:
        self._session().publish(topic, payload)

    def subscribe(self, topic: str) -> None:
        """Subscribe now and after every reconnect; a refusal (SUBACK 0x80) is an error."""
        self._session().subscribe(topic)
        if topic not in self._topics:
            self._topics.append(topic)

    def poll(self, timeout_ms: int) -> "tuple[str, bytes] | None":
        return self._session().poll(timeout_ms)

    def close(self) -> None:
        client = self._client
        self._client = None
        if client is not None:
            client.close()

    def _session(self) -> MqttClient:
        if self._client is None:
            raise TransportError("not connected")
        return self._client
