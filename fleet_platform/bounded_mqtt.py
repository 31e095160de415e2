"""The server's MQTT client: paho-mqtt with a size ceiling and a lean path for requests.

Two things paho does not do the way a server facing thousands of devices needs:

* **It reads a packet of any announced length** (up to 256 MB) into memory
  before handing it over. The managed broker already drops packets above the
  protocol's limit, but a broker run by someone else may not; here the
  announced length is checked as soon as the fixed header has arrived, and an
  oversized PUBLISH is stepped over unread and reported to
  :attr:`on_oversized` with its topic, so it costs neither the server's memory
  nor its connection.
* **It spends about 20 µs on every incoming message** (one ``select`` per
  packet, three reads, a message object, three locks, MQTT 5 properties). All
  device traffic arrives on one connection, so that cost is also how long one
  device's flood of small messages holds up everyone else's. Here the socket is
  read 64 KiB at a time, every complete packet in what arrived is handled at
  once, and an MQTT 3.1.1 PUBLISH goes straight to :attr:`on_request` as
  ``(topic, payload)`` bytes: the gateway refuses a flooding device's message
  in a few microseconds.

Everything else (connecting, TLS, keepalive, subscribing, publishing,
reconnecting, every packet but PUBLISH) stays paho's. This reaches into
private details of paho-mqtt (``_packet_read``, ``_sock_recv``, ``_in_packet``,
``_packet_handle``, ``_send_puback``, ``_msgtime_mutex``),
which is why the dependency is pinned and the behaviour is tested against a
real broker.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.client import time_func
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.exception import MalformedPacket

OnRequest = Callable[[bytes, bytes], None]
"""(topic, payload) of one incoming PUBLISH, called on paho's network thread."""

OnOversized = Callable[[bytes | None, int], None]
"""(topic if it could be read, announced length) of a PUBLISH that was skipped unread."""

READ_SIZE = 65536
READS_PER_WAKEUP = 64
"""Reads from a readable socket before paho goes round its loop (and writes) again."""

_PUBLISH = 3
"""MQTT control packet type of PUBLISH (the high nibble of the first byte)."""


class OversizedPacket(OSError):
    """The peer announced a packet longer than this client accepts."""


class BoundedClient(mqtt.Client):
    """``paho.mqtt.client.Client`` for MQTT 3.1.1 with a ceiling and a lean PUBLISH path."""

    def __init__(
        self,
        *args: Any,
        max_incoming: int,
        on_request: OnRequest,
        on_oversized: OnOversized | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("protocol", mqtt.MQTTv311)
        super().__init__(*args, **kwargs)
        if self._protocol != mqtt.MQTTv311:
            raise ValueError("the lean PUBLISH path parses MQTT 3.1.1 packets only")
        self.max_incoming = max_incoming
        self.on_request = on_request
        self.on_oversized = on_oversized
        self.refused_packets = 0
        self.failed_requests = 0
        self._unread = bytearray()
        self._skipping = 0

    def reconnect(self) -> MQTTErrorCode:
        # A new connection starts a new byte stream: nothing half-read carries over.
        self._unread = bytearray()
        self._skipping = 0
        return super().reconnect()

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        """Read and handle whatever the socket holds, however many packets that is."""
        for _ in range(READS_PER_WAKEUP):
            if self._sock is None:
                return MQTTErrorCode.MQTT_ERR_NO_CONN
            rc = self._packet_read()
            if rc > 0:
                return self._loop_rc_handle(rc)
            if rc == MQTTErrorCode.MQTT_ERR_AGAIN:
                break
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _packet_read(self) -> MQTTErrorCode:
        """One read of up to 64 KiB, then every complete packet in what has arrived.

        paho reads a packet in three small reads and handles it with a message
        object and three locks; here the fixed header is decoded from the
        buffer, a body longer than *max_incoming* ends the connection before it
        is read, a PUBLISH goes straight to :attr:`on_request`, and any other
        packet is handed to paho's own handling.
        """
        try:
            chunk = self._sock_recv(READ_SIZE)
        except BlockingIOError:
            return MQTTErrorCode.MQTT_ERR_AGAIN
        except OSError as err:
            self._easy_log(mqtt.MQTT_LOG_ERR, "failed to receive on socket: %s", err)
            return MQTTErrorCode.MQTT_ERR_CONN_LOST
        if not chunk:
            return MQTTErrorCode.MQTT_ERR_CONN_LOST
        if self._skipping:
            skipped = min(self._skipping, len(chunk))
            self._skipping -= skipped
            chunk = chunk[skipped:]
        unread = self._unread
        unread += chunk
        position, size = 0, len(unread)
        rc = MQTTErrorCode.MQTT_ERR_SUCCESS
        while rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
            try:
                header = _fixed_header(unread, position)
            except ValueError:
                return MQTTErrorCode.MQTT_ERR_PROTOCOL
            if header is None:
                break
            command, length, index = header
            end = index + length
            if length > self.max_incoming:
                if command >> 4 != _PUBLISH:
                    return MQTTErrorCode.MQTT_ERR_PROTOCOL
                self._skip(unread, index, end)
                position = min(end, size)
                continue
            if end > size:
                break
            rc = self._handle_packet(command, unread[index:end])
            position = end
        del unread[:position]
        with self._msgtime_mutex:
            self._last_bytes_received = time_func()
        return rc

    def _skip(self, unread: bytearray, start: int, end: int) -> None:
        """Step over an oversized PUBLISH without keeping it; the rest of it is never read in.

        Dropping the connection instead would let any device that can publish an
        oversized packet (through a broker with no limit of its own) take the
        server's one connection down for everyone, again and again.
        """
        self.refused_packets += 1
        self._skipping = max(end - len(unread), 0)
        topic: bytes | None = None
        if len(unread) - start >= 2:
            topic_end = start + 2 + ((unread[start] << 8) | unread[start + 1])
            if topic_end <= len(unread):
                topic = bytes(unread[start + 2 : topic_end])
        if self.on_oversized is not None:
            try:
                self.on_oversized(topic, end - start)
            except Exception as err:  # as for requests: the network thread lives on
                self.failed_requests += 1
                self._easy_log(mqtt.MQTT_LOG_ERR, "oversized-packet handler failed: %r", err)

    def _handle_packet(self, command: int, body: bytearray) -> MQTTErrorCode:
        if command >> 4 == _PUBLISH:
            return self._handle_request(command, body)
        self._in_packet["command"] = command
        self._in_packet["packet"] = body
        self._in_packet["remaining_length"] = len(body)
        self._in_packet["pos"] = 0
        try:
            return self._packet_handle()
        except MalformedPacket:
            return MQTTErrorCode.MQTT_ERR_PROTOCOL

    def _handle_request(self, command: int, body: bytearray) -> MQTTErrorCode:
        """An MQTT 3.1.1 PUBLISH: topic, packet id at QoS 1, payload; QoS 2 is not served."""
        qos = (command >> 1) & 0x03
        if len(body) < 2 or qos == 3:
            return MQTTErrorCode.MQTT_ERR_PROTOCOL
        end = 2 + ((body[0] << 8) | body[1])
        start = end + (2 if qos else 0)
        if len(body) < start or qos == 2:
            return MQTTErrorCode.MQTT_ERR_PROTOCOL
        try:
            self.on_request(bytes(body[2:end]), bytes(body[start:]))
        except Exception as err:  # the network thread must not die of a handler's bug
            self.failed_requests += 1
            self._easy_log(mqtt.MQTT_LOG_ERR, "request handler failed: %r", err)
        if qos == 1:
            return self._send_puback((body[end] << 8) | body[end + 1])
        return MQTTErrorCode.MQTT_ERR_SUCCESS


def _fixed_header(buffer: bytearray, start: int) -> tuple[int, int, int] | None:
    """(command byte, remaining length, where the body starts), or None until it has arrived.

    The remaining length takes one to four bytes of seven bits each (MQTT 3.1.1
    section 2.2.3); a fifth is a protocol violation (ValueError).
    """
    size = len(buffer)
    if size - start < 2:
        return None
    length, shift, index = 0, 0, start + 1
    while index < size:
        byte = buffer[index]
        index += 1
        length |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return buffer[start], length, index
        shift += 7
        if shift > 21:
            raise ValueError("remaining length longer than four bytes")
    return None
