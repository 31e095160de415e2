"""Thousands of mTLS devices against the fleet server, beside a bare MQTT echo.

Starts a real ``sevenfold server`` process (managed Mosquitto, SQLite or
PostgreSQL), gives every simulated device its own certificate from the fleet
CA, connects them all from a separate driver process
(:mod:`bench.fleet_load_driver`), runs an enroll storm (every device enrolls
at once) and then a steady phase in which each device heartbeats every
``--interval`` seconds. The anchor is the same driver against a bare echo
behind the same broker policy: a process that answers each request by sending
its bytes back, no decoding, no database — the floor MQTT over TLS sets here.

    .venv/bin/python -m bench.bench_fleet_load [--devices N] [--interval S]
        [--duration S] [--database sqlite|postgresql|both] [--gateway-processes N] [--json]

Reports latency p50/p99/max, requests lost (no answer in 10 s), retries after
``busy``/``rate-limited``, and the server's and broker's CPU seconds per
thousand requests. Nothing asserts on time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from fleet_platform.broker import MosquittoBroker
from fleet_platform.pki import CertificateAuthority, fleet_authority
from fleet_platform.server_config import RuntimeInfo

POSTGRES_URL = os.environ.get("SEVENFOLD_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its reaped children, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(value) for value in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def issue_devices(authority: CertificateAuthority, count: int, directory: Path) -> list[str]:
    ids = [f"load-{n:05d}" for n in range(count)]
    for device_id in ids:
        authority.issue_client(common_name=device_id, directory=directory, days=2)
    return ids


def run_driver(spec: dict[str, Any], tmp: Path) -> dict[str, Any]:
    path = tmp / f"spec-{time.monotonic_ns()}.json"
    path.write_text(json.dumps(spec))
    done = subprocess.run(
        [sys.executable, "-m", "bench.fleet_load_driver", str(path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"driver failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def bench_server(args: argparse.Namespace, database: str, tmp: Path) -> dict[str, Any]:
    state = tmp / f"state-{database}"
    authority = fleet_authority(state)
    devices = issue_devices(authority, args.devices, tmp / "devices")
    url = None
    if database == "postgresql":
        url = _fresh_postgresql(tmp)
    command = [
        sys.executable, "-m", "sevenfold.cli", "server", "--state", str(state),
        "--http-port", "0", "--heartbeat-interval", str(args.interval),
        "--no-attestation-gate",  # these devices have fleet certificates and never attest
    ]  # fmt: skip
    if args.gateway_processes > 1:
        command += ["--gateway-processes", str(args.gateway_processes)]
    if url:
        command += ["--database", url]
    with (tmp / f"server-{database}.log").open("w") as server_log:
        server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=server_log)
    try:
        info = _wait_for_server(state, server)
        assert info.broker_host and info.broker_port and info.ca_path
        broker_pid = _mosquitto_child(server.pid)
        before = (cpu_seconds(server.pid), cpu_seconds(broker_pid) if broker_pid else 0.0)
        spec = {
            "host": info.broker_host, "port": info.broker_port, "ca": info.ca_path,
            "prefix": info.prefix, "credentials": str(tmp / "devices"), "devices": devices,
            "interval": args.interval, "duration": args.duration,
            "watch": {"server": server.pid, **({"broker": broker_pid} if broker_pid else {})},
        }  # fmt: skip
        result = run_driver(spec, tmp)
        server_cpu = cpu_seconds(server.pid) - before[0]
        for child in children(server.pid):
            if child != broker_pid:
                server_cpu += cpu_seconds(child)
        broker_cpu = (cpu_seconds(broker_pid) - before[1]) if broker_pid else 0.0
        requests = result["heartbeats"]["answered"] + result["enroll_storm"]["answered"]
        result["server_cpu_s"] = round(server_cpu, 2)
        result["broker_cpu_s"] = round(broker_cpu, 2)
        result["server_cpu_ms_per_request"] = round(server_cpu / max(requests, 1) * 1000, 3)
        return result
    finally:
        stop_server(server)


def bench_echo(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    authority = CertificateAuthority.create(common_name="Echo CA", directory=tmp / "echo-ca")
    devices = issue_devices(authority, args.devices, tmp / "echo-devices")
    credential = authority.issue_client(common_name="sevenfold-server", directory=tmp / "echo-id")
    broker_dir = tmp / "echo-broker"
    # The same policy as the server's above: no attestation gate.
    with MosquittoBroker.start(directory=broker_dir, authority=authority, grants=None) as broker:
        echo = subprocess.Popen(
            [sys.executable, "-m", "bench.mqtt_echo", broker.host, str(broker.port),
             str(broker.ca_path), str(credential.cert_path), str(credential.key_path)],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert echo.stdout is not None and echo.stdout.readline().strip() == "ready"
            before = cpu_seconds(echo.pid)
            spec = {
                "host": broker.host, "port": broker.port, "ca": str(broker.ca_path),
                "prefix": "sevenfold", "credentials": str(tmp / "echo-devices"),
                "devices": devices, "interval": args.interval, "duration": args.duration,
                "watch": {"server": echo.pid, "broker": broker.pid},
            }  # fmt: skip
            result = run_driver(spec, tmp)
            result["server_cpu_s"] = round(cpu_seconds(echo.pid) - before, 2)
            return result
        finally:
            echo.terminate()
            echo.wait(timeout=10)


def stop_server(server: subprocess.Popen[bytes]) -> None:
    """SIGTERM, as an operator stops it (a clean stop); killed if it is not gone in 30 s."""
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()


def _wait_for_server(state: Path, server: subprocess.Popen[bytes]) -> RuntimeInfo:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"server exited with {server.returncode}")
        info = RuntimeInfo.read(state)
        if info is not None and info.pid == server.pid:
            return info
        time.sleep(0.2)
    raise SystemExit("server did not start in 60 s")


def _mosquitto_child(pid: int) -> int | None:
    for child in children(pid):
        if "mosquitto" in Path(f"/proc/{child}/comm").read_text():
            return child
    return None


def _fresh_postgresql(tmp: Path) -> str:
    import uuid

    import psycopg

    name = f"sevenfold_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = POSTGRES_URL.rpartition("/")
    return f"{base.replace('postgresql://', 'postgresql+psycopg://')}/{name}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--interval", type=int, default=5)
    parser.add_argument("--duration", type=int, default=60)
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--gateway-processes", type=int, default=1)
    parser.add_argument("--skip-echo", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="sevenfold-load-"))
    results: dict[str, Any] = {"devices": args.devices, "interval_s": args.interval,
                               "duration_s": args.duration}  # fmt: skip
    try:
        if not args.skip_echo:
            results["echo"] = bench_echo(args, tmp)
        engines = ("sqlite", "postgresql") if args.database == "both" else (args.database,)
        for engine in engines:
            results[engine] = bench_server(args, engine, tmp)
    finally:
        if not os.environ.get("SEVENFOLD_BENCH_KEEP"):
            shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for name in ("echo", "sqlite", "postgresql"):
        if name in results:
            print(name, json.dumps(results[name]))


if __name__ == "__main__":
    main()
