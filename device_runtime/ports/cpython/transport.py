"""Transport port for CPython devices: MQTT over mutual TLS with paho-mqtt.

Same interface as the MicroPython port (connect, publish, subscribe, poll,
close), so the device core cannot tell them apart. The broker's certificate
must name *host* (fleet broker certificates carry localhost and 127.0.0.1).
The broker proves itself with the fleet CA; the device proves itself with the
certificate whose key its root of trust holds.

Sessions are clean, so a broker forgets a device's subscriptions whenever the
connection ends. paho reconnects by itself after a lost connection but does
not subscribe again; this port remembers every topic it subscribed to and
subscribes to all of them on every connect, paho's or the caller's. Each
:meth:`connect` after :meth:`close` starts a new paho client, so nothing queued
in a session the caller gave up on (a request it already counts as lost) is
sent later.
"""

from __future__ import annotations

import queue
import socket
import ssl
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from device_runtime.core.errors import TransportError

_CONNECT_TIMEOUT_S = 10.0


def disable_nagle(client: mqtt.Client, userdata: object, sock: object) -> None:
    """paho leaves Nagle on; request/response over MQTT then stalls on delayed ACKs (~40 ms)."""
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class MqttTransport:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        client_id: str,
        ca_path: Path,
        cert_path: Path,
        key_path: Path,
        keepalive: int = 60,
        max_packet: int = 65536,
    ) -> None:
        self.host = host
        self.port = port
        self.client_id = client_id
        self.keepalive = keepalive
        self.max_packet = max_packet
        self._inbox: queue.Queue[tuple[str, bytes]] = queue.Queue(maxsize=1024)
        self._context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca_path))
        self._context.minimum_version = ssl.TLSVersion.TLSv1_2
        self._context.load_cert_chain(certfile=str(cert_path), keyfile=str(key_path))
        self._client: mqtt.Client | None = None
        self._connected = threading.Event()
        self._refused: str | None = None
        self._topics: list[str] = []
        self._subacks = threading.Condition()
        self._awaited: dict[int, list[ReasonCode] | None] = {}

    def _new_client(self) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv311
        )
        client.tls_set_context(self._context)
        client.on_socket_open = disable_nagle
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        return client

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            self._refused = str(reason)
        elif self._topics:
            # A clean session starts with no subscriptions: restore them before
            # paho resends anything queued, so no answer to it can be missed.
            client.subscribe([(topic, 1) for topic in self._topics])
        self._connected.set()

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        if len(msg.payload) > self.max_packet:
            return
        try:
            self._inbox.put_nowait((msg.topic, bytes(msg.payload)))
        except queue.Full:
            return

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reasons: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        with self._subacks:
            # Only subscribe() waits; a re-subscription after a reconnect has no one to tell.
            if mid in self._awaited:
                self._awaited[mid] = reasons
                self._subacks.notify_all()

    def connect(self) -> None:
        if self._client is not None:
            raise TransportError("already connected; close first")
        self._connected.clear()
        self._refused = None
        client = self._new_client()
        try:
            client.connect(self.host, self.port, keepalive=self.keepalive)
        except (OSError, ssl.SSLError) as exc:
            raise TransportError(f"cannot reach broker at {self.host}:{self.port}: {exc}") from exc
        self._client = client
        client.loop_start()
        if not self._connected.wait(_CONNECT_TIMEOUT_S):
            self.close()
            raise TransportError("broker did not answer CONNECT in time")
        if self._refused is not None:
            refused = self._refused
            self.close()
            raise TransportError(f"broker refused the connection: {refused}")

    def _session(self) -> mqtt.Client:
        if self._client is None:
            raise TransportError("not connected")
        return self._client

    def publish(self, topic: str, payload: bytes) -> None:
        info = self._session().publish(topic, payload, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise TransportError(f"publish to {topic} failed: {mqtt.error_string(info.rc)}")
        try:
            info.wait_for_publish(timeout=_CONNECT_TIMEOUT_S)
        except (ValueError, RuntimeError) as exc:
            raise TransportError(f"publish to {topic} failed: {exc}") from exc
        if not info.is_published():
            raise TransportError(f"no PUBACK for {topic} in time")

    def subscribe(self, topic: str) -> None:
        """Subscribe now and after every reconnect; a refusal (SUBACK 0x80) is an error."""
        client = self._session()
        with self._subacks:
            rc, mid = client.subscribe(topic, qos=1)
            if rc != mqtt.MQTT_ERR_SUCCESS or mid is None:
                raise TransportError(f"subscribe to {topic} failed: {mqtt.error_string(rc)}")
            self._awaited[mid] = None
            try:
                if not self._subacks.wait_for(
                    lambda: self._awaited[mid] is not None, _CONNECT_TIMEOUT_S
                ):
                    raise TransportError(f"no SUBACK for {topic} in time")
                codes = self._awaited[mid] or []
            finally:
                del self._awaited[mid]
        if any(code.is_failure for code in codes):
            raise TransportError(f"broker refused the subscription to {topic}")
        if topic not in self._topics:
            self._topics.append(topic)

    def poll(self, timeout_ms: int) -> tuple[str, bytes] | None:
        try:
            return self._inbox.get(timeout=max(timeout_ms, 0) / 1000)
        except queue.Empty:
            return None

    def close(self) -> None:
        """End the session; the next :meth:`connect` starts a new one. Safe to repeat."""
        client = self._client
        self._client = None
        if client is not None:
            client.disconnect()
            client.loop_stop()
