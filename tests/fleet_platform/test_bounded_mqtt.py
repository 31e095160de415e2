"""The server's MQTT client refuses an oversized packet before reading it into memory.

Run against a real Mosquitto configured with no size limit at all, the way a
broker someone else runs might be: it forwards a 32 MB message, and the client
must drop the connection at the packet's announced length, reconnect, and go
on receiving what fits.
"""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from fleet_platform.bounded_mqtt import BoundedClient
from tests.components import binary, free_port

LIMIT = 64 * 1024


@pytest.fixture
def unlimited_broker(tmp_path: Path) -> Iterator[int]:
    port = free_port()
    config = tmp_path / "mosquitto.conf"
    config.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    process = subprocess.Popen(
        [binary("mosquitto"), "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    probe = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="probe")
    while True:
        try:
            probe.connect("127.0.0.1", port)
            probe.disconnect()
            break
        except OSError:
            if time.monotonic() > deadline:
                process.kill()
                raise
            time.sleep(0.05)
    yield port
    process.terminate()
    process.wait(timeout=5)


def test_an_oversized_packet_costs_neither_memory_nor_the_connection(
    unlimited_broker: int,
) -> None:
    """Defect fixed twice: first paho buffered 100 MB; then the guard dropped the connection,
    which let any device that could publish an oversized packet cut the server off."""
    received: queue.Queue[bytes] = queue.Queue()
    oversized: list[tuple[bytes | None, int]] = []
    connections = threading.Semaphore(0)
    client = BoundedClient(
        CallbackAPIVersion.VERSION2,
        client_id="server",
        max_incoming=LIMIT,
        on_request=lambda topic, payload: received.put(payload),
        on_oversized=lambda topic, length: oversized.append((topic, length)),
    )
    client.on_connect = lambda c, u, f, r, p: (c.subscribe("t/#", qos=1), connections.release())
    client.reconnect_delay_set(min_delay=1, max_delay=1)
    client.connect("127.0.0.1", unlimited_broker)
    client.loop_start()
    try:
        assert connections.acquire(timeout=5)
        tracemalloc.start()
        _publish(unlimited_broker, 32 << 20, then=4)
        assert received.get(timeout=20) == b"x" * 4, "what follows it is still read"
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert peak < 4 << 20, f"peak {peak} bytes: the oversized body was buffered"
        assert client.refused_packets == 1
        assert oversized == [(b"t/up", (32 << 20) + len("t/up") + 4)]
        assert not connections.acquire(timeout=0.5), "the connection was never dropped"
        assert received.empty()
    finally:
        client.loop_stop()


def _publish(port: int, size: int, *, then: int) -> None:
    """Publish from another process, so its own copy of the payload is not measured here."""
    script = (
        "import sys, paho.mqtt.client as m\n"
        "from paho.mqtt.enums import CallbackAPIVersion as V\n"
        "c = m.Client(V.VERSION2, client_id='device')\n"
        f"c.connect('127.0.0.1', {port}); c.loop_start()\n"
        f"c.publish('t/up', b'x' * {size}, qos=1).wait_for_publish(20)\n"
        f"c.publish('t/up', b'x' * {then}, qos=1).wait_for_publish(20)\n"
        "c.loop_stop()\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
