"""A hostile certificate holder floods the server; a good device is still served.

Defects this guards against: 30,000 enrolls from one device added 30,000
events and 32,000 log lines; the shared request queue let one device push a
good device's latency to 2.3 s. Here one device sends 20,000 messages of every
kind it can (garbage, truncated, oversized, wrong version, unknown and response
types, another device's identity, valid enrolls and heartbeats, replays, a
rolled-back boot count) from its own process, as fast as its connection
allows, while a good device heartbeats at its normal pace. Bounded in count and
time, on loopback only. What this asserts is that nothing is starved, recorded
without bound or lost; how much the flood costs the good device in latency is
measured, beside a no-flood anchor, by ``bench/bench_flood.py``.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from device_runtime.core import protocol
from fleet_platform.pki import fleet_authority
from fleet_platform.server_config import ServerConfig
from sevenfold.server import FleetServer
from tests.broker_fixtures import session_to
from tests.components import binary, free_port

MESSAGES = 20_000
GOOD_INTERVAL_S = 0.25
"""Within the per-device rate (5/s), as a real device's heartbeats are."""
STARVED_S = 2.0
"""An answer later than this means the good device was made to wait for the hostile one."""


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_a_good_device_is_served_through_a_flood_of_every_kind(tmp_path: Path) -> None:
    binary("mosquitto")
    config = ServerConfig(
        state_dir=tmp_path / "state",
        http_port=0,
        broker_port=free_port(),
        recovery_port=free_port(),
        attestation_gate=False,
        heartbeat_interval=1,
        services=("attestation",),
    )
    with FleetServer(config=config) as fleet:
        assert fleet.broker is not None and fleet.registry is not None
        authority = fleet_authority(config.state_dir)
        good_id, bad_id = "dev-good", "dev-hostile"
        good_credential = authority.issue_client(common_name=good_id, directory=tmp_path / "ids")
        bad = authority.issue_client(common_name=bad_id, directory=tmp_path / "ids")
        good = session_to(fleet.broker, good_credential, client_id=good_id)
        assert good.accepted()
        good.subscribe(protocol.topic("sevenfold", good_id, "down"))
        enroll = {"device_id": good_id, "hwmodel": "h", "swname": "s", "swversion": "1",
                  "rot": "software", "boot_count": 1}  # fmt: skip
        good.publish(
            protocol.topic("sevenfold", good_id, "up"), protocol.encode("enroll", b"e" * 8, enroll)
        )
        assert good.receive(timeout=5) is not None
        rss_before = _rss_mib()

        flood = subprocess.Popen(
            [sys.executable, "-m", "bench.flood_device", fleet.broker.host,
             str(fleet.broker.port), str(fleet.broker.ca_path), str(bad.cert_path),
             str(bad.key_path), bad_id, str(MESSAGES)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        latencies: list[float] = []
        seq = 0
        deadline = time.monotonic() + 90
        while flood.poll() is None or len(latencies) < 20:
            assert time.monotonic() < deadline, "the flood is bounded in time"
            seq += 1
            correlation = os.urandom(8)
            beat = {"seq": seq, "uptime": seq, "boot_count": 1}
            started = time.monotonic()
            good.publish(
                protocol.topic("sevenfold", good_id, "up"),
                protocol.encode("heartbeat", correlation, beat),
            )
            while True:
                received = good.receive(timeout=5)
                assert received is not None, f"heartbeat {seq} unanswered during the flood"
                answer = protocol.decode(received[1])
                if answer.correlation == correlation:
                    break
            assert answer.kind == "heartbeat-ack", answer.body
            latencies.append(time.monotonic() - started)
            time.sleep(max(0.0, GOOD_INTERVAL_S - (time.monotonic() - started)))
        output, errors = flood.communicate(timeout=30)
        assert flood.returncode == 0, errors
        sent = int(output.split()[0])
        assert sent >= MESSAGES

        ordered = sorted(latencies)
        p99 = ordered[min(len(ordered) - 1, round((len(ordered) - 1) * 0.99))]
        print(f"good device: {len(ordered)} heartbeats, p50 {ordered[len(ordered) // 2] * 1000:.1f}"
              f" ms, p99 {p99 * 1000:.1f} ms; flood of {output.strip()} (messages, s)")  # fmt: skip
        assert ordered[-1] < STARVED_S, f"a good heartbeat waited {ordered[-1]:.2f} s"

        events = [e for e in fleet.registry.events(limit=10_000) if e.device_id == bad_id]
        assert 0 < len(events) <= 60, f"{len(events)} events recorded for the hostile device"
        assert fleet.registry.events(limit=10_000)[-1].device_id in (good_id, bad_id)
        dropped = fleet.metrics.value("sevenfold_gateway_dropped_total", "rate-limited")
        assert dropped > MESSAGES // 2, "the excess was refused at admission, not served"
        assert fleet.metrics.total("sevenfold_gateway_internal_errors_total") == 0
        assert _rss_mib() - rss_before < 64, "memory stays bounded"
        assert fleet.gateway is not None and fleet.gateway.health().ok
        good.close()
