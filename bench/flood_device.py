"""A hostile certificate holder: one device sending N messages of every kind it can.

Garbage, truncated and oversized CBOR, a future version, ``v: true``, unknown
and response types, another device's identity, valid enrolls with rising boot
counts, valid heartbeats, replays, a rolled-back boot count and a counter
storage cannot hold, cycled as fast as paho publishes them at QoS 0. Used by
``tests/sevenfold/test_flood.py`` and ``bench/bench_flood.py``; run as

    python -m bench.flood_device HOST PORT CA CERT KEY DEVICE_ID COUNT

and it prints how many it sent and in how many seconds.
"""

from __future__ import annotations

import sys
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from device_runtime.core import cbor, protocol

CORRELATION = b"\x01" * 8


def messages(device_id: str, n: int) -> list[bytes]:
    """One of each kind; *n* makes the valid ones new (rising seq and boot count)."""
    beat: dict[str, object] = {"seq": n + 1, "uptime": 1, "boot_count": 5}
    enroll: dict[str, object] = {
        "device_id": device_id, "hwmodel": "h", "swname": "s", "swversion": "1", "rot": "tpm",
    }  # fmt: skip
    return [
        b"\xff\x00garbage",
        b"\xa4",
        b"\x00" * (protocol.MAX_MESSAGE + 1),
        cbor.dumps({"v": 2, "t": "enroll", "id": CORRELATION, "b": {}}),
        cbor.dumps({"v": True, "t": "heartbeat", "id": CORRELATION, "b": beat}),
        cbor.dumps({"v": 1, "t": "reboot-everyone", "id": CORRELATION, "b": {}}),
        protocol.encode("heartbeat-ack", CORRELATION, {"seq": 1, "server_time": 1}),
        protocol.encode(
            "enroll", CORRELATION, dict(enroll, device_id="someone-else", boot_count=1)
        ),
        protocol.encode("enroll", CORRELATION, dict(enroll, boot_count=n + 1)),
        protocol.encode("heartbeat", CORRELATION, beat),
        protocol.encode("heartbeat", CORRELATION, {"seq": 1, "uptime": 1, "boot_count": 5}),
        protocol.encode("heartbeat", CORRELATION, {"seq": n + 1, "uptime": 1, "boot_count": 1}),
        cbor.dumps(
            {
                "v": 1,
                "t": "heartbeat",
                "id": CORRELATION,
                "b": {"seq": 2**64 - 1, "uptime": 1, "boot_count": 1},
            }
        ),
    ]


def main() -> None:
    host, port, ca, cert, key, device_id, count = sys.argv[1:8]
    up = protocol.topic("sevenfold", device_id, "up")
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=device_id)
    client.tls_set(ca_certs=ca, certfile=cert, keyfile=key)
    client.max_queued_messages_set(0)
    client.connect(host, int(port))
    client.loop_start()
    started = time.monotonic()
    sent = 0
    while sent < int(count):
        for payload in messages(device_id, sent):
            client.publish(up, payload, qos=0)
            sent += 1
    client.disconnect()
    client.loop_stop()
    print(sent, round(time.monotonic() - started, 2), flush=True)


if __name__ == "__main__":
    main()
