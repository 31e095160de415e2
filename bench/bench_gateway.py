"""Request/response cost of the fleet gateway against a bare MQTT echo.

Both sides run over the same managed Mosquitto with mutual TLS and the same
device transport. The anchor answers each request by echoing its bytes back
(no decoding, no database): the floor that MQTT over TLS sets. Ours decodes,
validates, checks identity and replay, writes the heartbeat to SQLite and
encodes the answer. Run from the repository root::

    .venv/bin/python -m bench.bench_gateway [--requests N] [--json]

Reports the median round trip of sequential heartbeats and the ratio to the
echo. Nothing asserts on time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from attestation_server.enrollment import EnrollmentService
from attestation_server.registry import DeviceRegistry
from device_runtime.core import protocol
from device_runtime.ports.cpython.transport import MqttTransport, disable_nagle
from fleet_platform.broker import MosquittoBroker
from fleet_platform.gateway import Gateway
from fleet_platform.gateway_limits import GatewayLimits
from fleet_platform.mqtt_tls import client_context
from fleet_platform.pki import CertificateAuthority
from fleet_platform.storage import open_database
from sevenfold.server import MIGRATIONS

DEVICE = "bench-0001"
REPEATS = 5


def echo_responder(broker: MosquittoBroker, authority: CertificateAuthority, tmp: Path) -> Any:
    credential = authority.issue_client(common_name="sevenfold-server", directory=tmp / "echo")
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="sevenfold-server")
    client.tls_set_context(client_context(ca_path=broker.ca_path, credential=credential))

    def on_message(c: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        c.publish(msg.topic[: -len("up")] + "down", msg.payload, qos=1)

    client.on_connect = lambda c, *_: c.subscribe("sevenfold/d/+/up", qos=1)
    client.on_message = on_message
    client.on_socket_open = disable_nagle
    client.connect(broker.host, broker.port)
    client.loop_start()
    return client


@contextmanager
def device(
    broker: MosquittoBroker, authority: CertificateAuthority, tmp: Path
) -> Iterator[MqttTransport]:
    credential = authority.issue_client(common_name=DEVICE, directory=tmp / "device")
    transport = MqttTransport(
        host=broker.host,
        port=broker.port,
        client_id=DEVICE,
        ca_path=broker.ca_path,
        cert_path=credential.cert_path,
        key_path=credential.key_path,
    )
    transport.connect()
    transport.subscribe(protocol.topic("sevenfold", DEVICE, "down"))
    try:
        yield transport
    finally:
        transport.close()


def round_trips(
    transport: MqttTransport, requests: int, message: Callable[[int], bytes]
) -> list[float]:
    """Milliseconds per sequential request/response, one sample per repeat."""
    samples = []
    seq = 0
    for _ in range(REPEATS):
        start = time.perf_counter()
        for _ in range(requests):
            seq += 1
            transport.publish(protocol.topic("sevenfold", DEVICE, "up"), message(seq))
            if transport.poll(5000) is None:
                raise SystemExit("no answer within 5 s")
        samples.append((time.perf_counter() - start) * 1000 / requests)
    return samples


def heartbeat(seq: int) -> bytes:
    body: dict[str, object] = {"seq": seq, "uptime": seq, "boot_count": 1}
    return protocol.encode("heartbeat", seq.to_bytes(8, "big"), body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="requests per repeat")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        authority = CertificateAuthority.create(common_name="Bench CA", directory=tmp / "ca")
        with MosquittoBroker.start(
            directory=tmp / "broker",
            authority=authority,
            grants=None,  # unattested devices
        ) as broker:
            echo = echo_responder(broker, authority, tmp)
            time.sleep(0.5)
            with device(broker, authority, tmp) as transport:
                anchor = round_trips(transport, args.requests, heartbeat)
            echo.disconnect()
            echo.loop_stop()

            database = open_database(f"sqlite:///{tmp / 'fleet.db'}", migrations=MIGRATIONS)
            database.upgrade()
            registry = DeviceRegistry(database=database)
            gateway = Gateway(
                host=broker.host,
                port=broker.port,
                ca_path=broker.ca_path,
                credential=authority.issue_client(
                    common_name="sevenfold-server", directory=tmp / "server"
                ),
                database=database,
                record_rejection=registry.record_rejection,
                share_group="bench",
                # One device asking as fast as it can: lift its rate limit for this figure.
                limits=GatewayLimits(rate=1e9, burst=10**9),
            )
            EnrollmentService(registry=registry, heartbeat_interval=30).register(gateway)
            gateway.start()
            with device(broker, authority, tmp) as transport:
                enroll = {
                    "device_id": DEVICE,
                    "hwmodel": "bench",
                    "swname": "bench",
                    "swversion": "1",
                    "rot": "software",
                    "boot_count": 1,
                }
                transport.publish(
                    protocol.topic("sevenfold", DEVICE, "up"),
                    protocol.encode("enroll", bytes(8), enroll),
                )
                transport.poll(5000)
                ours = round_trips(transport, args.requests, heartbeat)
            gateway.stop()
            database.dispose()
    report = {
        "requests_per_repeat": args.requests,
        "repeats": REPEATS,
        "echo_ms_per_round_trip": statistics.median(anchor),
        "gateway_ms_per_round_trip": statistics.median(ours),
    }
    report["ratio_gateway_to_echo"] = (
        report["gateway_ms_per_round_trip"] / report["echo_ms_per_round_trip"]
    )
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"sequential heartbeats over mTLS Mosquitto, median of {REPEATS} x {args.requests}")
    print(f"  MQTT echo (anchor)      {report['echo_ms_per_round_trip']:.3f} ms per round trip")
    print(f"  gateway + SQLite        {report['gateway_ms_per_round_trip']:.3f} ms per round trip")
    print(f"  gateway / echo          x{report['ratio_gateway_to_echo']:.2f}")


if __name__ == "__main__":
    main()
