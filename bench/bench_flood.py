"""Good devices' heartbeat latency while one certificate holder floods the server.

Starts a real ``sevenfold server`` (SQLite, managed Mosquitto), enrolls
``--good`` devices that heartbeat every 0.25 s at staggered phases (within the
per-device rate), measures their latency with nobody flooding — the anchor —
and then again while one device (:mod:`bench.flood_device`) sends
``--messages`` messages of every kind as fast as it can. Reports p50/p99/max
of both, the ratio, what the server recorded about the flooding device and
how much its memory grew.

    .venv/bin/python -m bench.bench_flood [--good N] [--messages N] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from device_runtime.core import protocol
from fleet_platform import api_tokens
from fleet_platform.pki import CertificateAuthority, IssuedCredential, fleet_authority
from fleet_platform.server_config import RuntimeInfo

INTERVAL_S = 0.25
HOSTILE = "dev-hostile"


class GoodDevice:
    """A well-behaved device: paho over mTLS, one request at a time, latency per answer."""

    def __init__(self, device_id: str, info: RuntimeInfo, credential: IssuedCredential) -> None:
        self.device_id = device_id
        self.answers: queue.Queue[bytes] = queue.Queue()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=device_id)
        self.client.tls_set(
            ca_certs=info.ca_path,
            certfile=str(credential.cert_path),
            keyfile=str(credential.key_path),
        )
        subscribed = threading.Event()
        self.client.on_message = lambda c, u, m: self.answers.put(bytes(m.payload))
        self.client.on_subscribe = lambda *a: subscribed.set()
        assert info.broker_host and info.broker_port
        self.client.connect(info.broker_host, info.broker_port)
        self.client.loop_start()
        self.client.subscribe(protocol.topic("sevenfold", device_id, "down"), qos=1)
        assert subscribed.wait(10)
        self.seq = 0

    def ask(self, kind: str, body: dict[str, object]) -> float:
        """Seconds until the answer to one request (it must be an acknowledgement)."""
        correlation = os.urandom(8)
        started = time.monotonic()
        self.client.publish(
            protocol.topic("sevenfold", self.device_id, "up"),
            protocol.encode(kind, correlation, body),
            qos=1,
        )
        while True:
            envelope = protocol.decode(self.answers.get(timeout=10))
            if envelope.correlation == correlation:
                if envelope.kind == "error":
                    raise SystemExit(f"{self.device_id}: {envelope.body}")
                return time.monotonic() - started

    def beat(self) -> float:
        self.seq += 1
        return self.ask("heartbeat", {"seq": self.seq, "uptime": self.seq, "boot_count": 1})


def beat_until(devices: list[GoodDevice], done: threading.Event, at_least: int) -> list[float]:
    """Every device heartbeats every INTERVAL_S, staggered, until *done* and *at_least* each."""
    latencies: list[float] = []
    lock = threading.Lock()

    def run(index: int, device: GoodDevice) -> None:
        time.sleep(INTERVAL_S * index / len(devices))
        count = 0
        while not done.is_set() or count < at_least:
            started = time.monotonic()
            latency = device.beat()
            with lock:
                latencies.append(latency)
            count += 1
            time.sleep(max(0.0, INTERVAL_S - (time.monotonic() - started)))

    threads = [threading.Thread(target=run, args=(i, d)) for i, d in enumerate(devices)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies


def quantiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    last = len(ordered) - 1
    return {
        "samples": len(ordered),
        "p50_ms": round(ordered[last // 2] * 1000, 2),
        "p99_ms": round(ordered[round(last * 0.99)] * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2),
    }


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    state = tmp / "state"
    authority: CertificateAuthority = fleet_authority(state)
    server = subprocess.Popen(
        [sys.executable, "-m", "sevenfold.cli", "server", "--state", str(state),
         "--http-port", "0", "--broker-port", "0", "--broker-recovery-port", "0",
         "--no-attestation-gate", "--service", "attestation"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while (info := RuntimeInfo.read(state)) is None or info.pid != server.pid:
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("the server did not start")
            time.sleep(0.2)
        devices = []
        for index in range(args.good):
            device_id = f"dev-good-{index:02d}"
            credential = authority.issue_client(common_name=device_id, directory=tmp / "ids")
            device = GoodDevice(device_id, info, credential)
            enroll: dict[str, object] = {
                "device_id": device_id,
                "hwmodel": "h",
                "swname": "s",
                "swversion": "1",
                "rot": "software",
                "boot_count": 1,
            }
            device.ask("enroll", enroll)
            devices.append(device)
        quiet = threading.Event()
        quiet.set()
        anchor = beat_until(devices, quiet, at_least=8)
        rss_before = rss_mib(server.pid)
        hostile = authority.issue_client(common_name=HOSTILE, directory=tmp / "ids")
        finished = threading.Event()
        flood_result: list[str] = []

        def flood() -> None:
            done = subprocess.run(
                [sys.executable, "-m", "bench.flood_device", str(info.broker_host),
                 str(info.broker_port), str(info.ca_path), str(hostile.cert_path),
                 str(hostile.key_path), HOSTILE, str(args.messages)],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            flood_result.append(done.stdout.strip())
            finished.set()

        flooder = threading.Thread(target=flood)
        flooder.start()
        during = beat_until(devices, finished, at_least=4)
        flooder.join()
        token = api_tokens.read(state)
        headers = {"Authorization": f"Bearer {token}"}
        events = httpx.get(
            f"{info.http_url}/api/v1/events", params={"limit": 1000}, headers=headers, timeout=10
        ).json()
        metrics = httpx.get(f"{info.http_url}/metrics", headers=headers, timeout=10).text
        sent, seconds = flood_result[0].split()
        result = {
            "good_devices": args.good,
            "flood": {"messages": int(sent), "seconds": float(seconds)},
            "anchor_no_flood": quantiles(anchor),
            "during_flood": quantiles(during),
            "hostile_events_recorded": sum(1 for e in events if e["device_id"] == HOSTILE),
            "server_rss_growth_mib": round(rss_mib(server.pid) - rss_before, 1),
            "dropped_rate_limited": next(
                (
                    int(line.split()[-1])
                    for line in metrics.splitlines()
                    if line.startswith('sevenfold_gateway_dropped_total{code="rate-limited"}')
                ),
                0,
            ),
        }
        result["p99_ratio"] = round(
            result["during_flood"]["p99_ms"] / max(result["anchor_no_flood"]["p99_ms"], 0.01), 2
        )
        for device in devices:
            device.client.loop_stop()
        return result
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--good", type=int, default=20)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sevenfold-flood-") as tmp:
        result = run(args, Path(tmp))
    print(json.dumps(result, indent=2 if args.json else None))


if __name__ == "__main__":
    main()
