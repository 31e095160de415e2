"""A paho-mqtt client that refuses an oversized packet before buffering any of it.

The managed broker already drops packets above the protocol's limit, and the
server tells any MQTT 5 broker its limit in CONNECT (Maximum Packet Size), but
a broker run by someone else may do neither, and paho itself reads a packet of
any announced length (up to 256 MB) into memory before handing it over. Here
the announced length is checked the moment paho has decoded it, before the
first byte of the body is read: an oversized packet ends the connection (paho
then reconnects) instead of the server's memory.

This reaches into one private detail of paho-mqtt (the ``_in_packet`` state
its reader keeps), which is why the dependency is pinned and the behaviour is
tested against a real broker that does forward an oversized message.
"""

from __future__ import annotations

from typing import Any

import paho.mqtt.client as mqtt


class OversizedPacket(OSError):
    """The peer announced a packet longer than this client accepts."""


class BoundedClient(mqtt.Client):
    """``paho.mqtt.client.Client`` with a ceiling on incoming packet length."""

    def __init__(self, *args: Any, max_incoming: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_incoming = max_incoming
        self.refused_packets = 0

    def _sock_recv(self, bufsize: int) -> bytes:
        packet = self._in_packet
        if (
            packet["have_remaining"]
            and packet["to_process"] == packet["remaining_length"]
            and packet["remaining_length"] > self.max_incoming
        ):
            self.refused_packets += 1
            length = packet["remaining_length"]
            raise OversizedPacket(f"incoming packet of {length} bytes, limit {self.max_incoming}")
        return super()._sock_recv(bufsize)
