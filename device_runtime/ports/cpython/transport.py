"""Transport port for CPython devices: MQTT over mutual TLS with paho-mqtt.

Same interface as the MicroPython port (connect, publish, subscribe, poll,
close), so the device core cannot tell them apart. The broker's certificate
must name *host* (fleet broker certificates carry localhost and 127.0.0.1).
The broker proves itself with the fleet CA; the device proves itself with the
certificate whose key its root of trust holds.
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
        self.keepalive = keepalive
        self.max_packet = max_packet
        self._inbox: queue.Queue[tuple[str, bytes]] = queue.Queue(maxsize=1024)
        self._connected = threading.Event()
        self._refused: str | None = None
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca_path))
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(certfile=str(cert_path), keyfile=str(key_path))
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311
        )
        self._client.tls_set_context(context)
        self._client.on_socket_open = disable_nagle
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message

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
        self._connected.set()

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        if len(msg.payload) > self.max_packet:
            return
        try:
            self._inbox.put_nowait((msg.topic, bytes(msg.payload)))
        except queue.Full:
            return

    def connect(self) -> None:
        try:
            self._client.connect(self.host, self.port, keepalive=self.keepalive)
        except (OSError, ssl.SSLError) as exc:
            raise TransportError(f"cannot reach broker at {self.host}:{self.port}: {exc}") from exc
        self._client.loop_start()
        if not self._connected.wait(_CONNECT_TIMEOUT_S):
            self.close()
            raise TransportError("broker did not answer CONNECT in time")
        if self._refused is not None:
            self.close()
            raise TransportError(f"broker refused the connection: {self._refused}")

    def publish(self, topic: str, payload: bytes) -> None:
        info = self._client.publish(topic, payload, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise TransportError(f"publish to {topic} failed: {mqtt.error_string(info.rc)}")
        try:
            info.wait_for_publish(timeout=_CONNECT_TIMEOUT_S)
        except (ValueError, RuntimeError) as exc:
            raise TransportError(f"publish to {topic} failed: {exc}") from exc
        if not info.is_published():
            raise TransportError(f"no PUBACK for {topic} in time")

    def subscribe(self, topic: str) -> None:
        granted = threading.Event()
        codes: list[ReasonCode] = []

        def on_subscribe(
            client: mqtt.Client,
            userdata: object,
            mid: int,
            reasons: list[ReasonCode],
            properties: Properties | None,
        ) -> None:
            codes.extend(reasons)
            granted.set()

        self._client.on_subscribe = on_subscribe
        rc, _ = self._client.subscribe(topic, qos=1)
        if rc != mqtt.MQTT_ERR_SUCCESS:
            raise TransportError(f"subscribe to {topic} failed: {mqtt.error_string(rc)}")
        if not granted.wait(_CONNECT_TIMEOUT_S):
            raise TransportError(f"no SUBACK for {topic} in time")
        if any(code.is_failure for code in codes):
            raise TransportError(f"broker refused the subscription to {topic}")

    def poll(self, timeout_ms: int) -> tuple[str, bytes] | None:
        try:
            return self._inbox.get(timeout=max(timeout_ms, 0) / 1000)
        except queue.Empty:
            return None

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
