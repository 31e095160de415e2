"""How fast the server's MQTT client takes in device messages, against paho-mqtt itself.

All device traffic reaches a gateway on one connection, so the client's cost
per incoming message is how long one device's flood holds up everyone else.
A sender writes ``--messages`` pre-encoded PUBLISH packets (60-byte payloads,
QoS 0) through the managed Mosquitto (mutual TLS) in one go; each receiver
counts them, doing nothing else per message, and the time from the first to
the last is the drain time. Anchor: stock paho-mqtt in the same run, as MQTT
5 (what the gateway used before) and as MQTT 3.1.1.

    .venv/bin/python -m bench.bench_mqtt_ingest [--messages N] [--json]
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from device_runtime.ports.micropython import mqtt_packet as packet
from fleet_platform.bounded_mqtt import BoundedClient
from fleet_platform.broker import MosquittoBroker
from fleet_platform.mqtt_tls import client_context
from fleet_platform.pki import CertificateAuthority, IssuedCredential

REPEATS = 3
TOPIC = "sevenfold/d/dev-flood/up"


def flood(broker: MosquittoBroker, credential: IssuedCredential, count: int) -> None:
    context = broker.client_context(credential)
    with (
        socket.create_connection((broker.host, broker.port)) as raw,
        context.wrap_socket(raw, server_hostname=broker.host) as tls,
    ):
        tls.sendall(packet.encode_connect("dev-flood", 60))
        tls.recv(4)
        tls.sendall(b"".join(packet.encode_publish(TOPIC, b"x" * 60, 0) for _ in range(count)))
        time.sleep(0.5)


def drain_seconds(
    make: Callable[[Callable[[], None]], mqtt.Client],
    broker: MosquittoBroker,
    sender: IssuedCredential,
    count: int,
) -> float:
    arrivals: list[float] = []
    done = threading.Event()

    def arrived() -> None:
        arrivals.append(time.perf_counter())
        if len(arrivals) == count:
            done.set()

    client = make(arrived)
    subscribed = threading.Event()
    client.on_subscribe = lambda *a: subscribed.set()
    client.on_connect = lambda c, *a: c.subscribe("sevenfold/d/+/up", qos=0)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        if not subscribed.wait(10):
            raise SystemExit("no SUBACK")
        flood(broker, sender, count)
        if not done.wait(60):
            raise SystemExit(f"only {len(arrivals)} of {count} arrived")
        return arrivals[-1] - arrivals[0]
    finally:
        client.disconnect()
        client.loop_stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sevenfold-ingest-") as name:
        tmp = Path(name)
        authority = CertificateAuthority.create(common_name="Bench CA", directory=tmp / "ca")
        server = authority.issue_client(common_name="sevenfold-server", directory=tmp / "ids")
        sender = authority.issue_client(common_name="dev-flood", directory=tmp / "ids")
        with MosquittoBroker.start(
            directory=tmp / "broker",
            authority=authority,
            grants=None,  # unattested devices
        ) as broker:
            context = client_context(ca_path=broker.ca_path, credential=server)

            def paho(
                version: MQTTProtocolVersion,
            ) -> Callable[[Callable[[], None]], mqtt.Client]:
                def make(arrived: Callable[[], None]) -> mqtt.Client:
                    client = mqtt.Client(
                        CallbackAPIVersion.VERSION2, client_id="sevenfold-server", protocol=version
                    )
                    client.tls_set_context(context)
                    client.on_message = lambda c, u, m: arrived()
                    return client

                return make

            def ours(arrived: Callable[[], None]) -> mqtt.Client:
                client = BoundedClient(
                    CallbackAPIVersion.VERSION2,
                    client_id="sevenfold-server",
                    max_incoming=65536,
                    on_request=lambda topic, payload: arrived(),
                )
                client.tls_set_context(context)
                return client

            receivers = {
                "paho, MQTT 5 (anchor)": paho(mqtt.MQTTv5),
                "paho, MQTT 3.1.1 (anchor)": paho(mqtt.MQTTv311),
                "BoundedClient (ours)": ours,
            }
            results = {}
            for label, make in receivers.items():
                seconds = statistics.median(
                    drain_seconds(make, broker, sender, args.messages) for _ in range(REPEATS)
                )
                results[label] = {
                    "drain_ms": round(seconds * 1000, 1),
                    "messages_per_s": round(args.messages / seconds),
                    "us_per_message": round(seconds / args.messages * 1e6, 2),
                }
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{args.messages} PUBLISH packets into one client, median of {REPEATS}")
    for label, figures in results.items():
        print(f"  {label:28s} {figures['drain_ms']:8.1f} ms  {figures['messages_per_s']:>8} msg/s")
    ratio = (
        results["paho, MQTT 5 (anchor)"]["drain_ms"] / results["BoundedClient (ours)"]["drain_ms"]
    )
    print(f"  ours against paho MQTT 5:    x{ratio:.1f} faster")


if __name__ == "__main__":
    main()
