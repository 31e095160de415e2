"""``sevenfold server status`` against a real server: healthy, broker down for good, no server.

The unhealthy case is made the way it happens in the field: the managed
mosquitto is killed with SIGKILL and another process takes its port before the
supervisor can launch it again, so every restart attempt fails until the port
is given back.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from fleet_platform.server_config import RuntimeInfo
from sevenfold.api_client import parse_prometheus
from sevenfold.cli.app import app
from sevenfold.server import FleetServer
from tests.components import free_port
from tests.sevenfold.cli.hostile_text import WIDE
from tests.sevenfold.resilience_support import managed_fleet, probe_of, wait_until

runner = CliRunner()


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[FleetServer]:
    with managed_fleet(tmp_path / "state") as server:
        yield server


def status(state: Path, *options: str) -> Result:
    return runner.invoke(app, ["server", "status", "--state", str(state), *options], env=WIDE)


def test_healthy_server_lists_its_checks_and_counters(fleet: FleetServer) -> None:
    device = probe_of(fleet, "status-dev")
    try:
        device.enroll()
        for seq in (1, 2):
            answer = device.heartbeat(seq)
            assert answer is not None and answer.kind == "heartbeat-ack"
    finally:
        device.close()
    state = fleet.config.state_dir

    shown = status(state)
    assert shown.exit_code == 0, shown.output
    rows = {line.split("│")[1].strip(): line for line in shown.stdout.splitlines() if "│" in line}
    for check in ("database", "gateway", "broker", "updates"):
        assert " ok " in rows[check], shown.stdout
    assert "sqlite answers" in rows["database"]
    assert "is running" in rows["broker"]
    assert "no update repository yet" in rows["updates"]
    answers = rows["sevenfold_gateway_answers_total"]
    assert "code=ok" in answers and answers.split("│")[3].strip() == "3"  # enroll + 2 beats
    assert rows["sevenfold_gateway_internal_errors_total"].split("│")[3].strip() == "0"
    assert "sevenfold_gateway_latency_seconds" in rows
    assert shown.stdout.rstrip().endswith("healthy")

    as_json = status(state, "--json")
    assert as_json.exit_code == 0, as_json.output
    report = json.loads(as_json.stdout)
    assert report["healthy"] is True and report["metrics_error"] is None
    assert report["health"]["http_status"] == 200
    assert set(report["health"]["checks"]) == {"database", "gateway", "broker", "updates"}
    assert report["server"]["broker_port"] == fleet.config.broker_port
    assert {
        "name": "sevenfold_gateway_answers_total",
        "labels": {"code": "ok"},
        "value": 3,
    } in report["metrics"]


def test_broker_that_cannot_restart_makes_status_exit_1_naming_it(fleet: FleetServer) -> None:
    supervisor, broker = fleet.supervisor, fleet.broker
    assert supervisor is not None and broker is not None
    port, pid = broker.port, broker.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        wait_until(lambda: _bound(squatter, port), timeout=5, what=f"port {port} to be free")
        squatter.listen(1)
        wait_until(
            lambda: supervisor.health().failed_attempts >= 1,
            timeout=10,
            what="a failed restart attempt",
        )
        shown = status(fleet.config.state_dir)
        as_json = status(fleet.config.state_dir, "--json")

    assert shown.exit_code == 1, shown.output
    broker_row = next(line for line in shown.stdout.splitlines() if "│ broker" in line)
    assert "FAILING" in broker_row and f"127.0.0.1:{port} is down since" in broker_row
    assert "restart attempt(s) failed" in broker_row
    assert "unhealthy (" in shown.stdout and "broker" in shown.stdout.splitlines()[-1]
    assert as_json.exit_code == 1
    report = json.loads(as_json.stdout)
    assert report["healthy"] is False and report["health"]["http_status"] == 503
    assert report["health"]["status"] == "unhealthy"
    broker = report["health"]["checks"]["broker"]
    assert (
        broker["ok"] is False and f"port {port} on 127.0.0.1 is already in use" in broker["detail"]
    )

    # With its port back, the supervisor's next attempt brings it up and the status follows.
    began = time.monotonic()
    wait_until(
        lambda: status(fleet.config.state_dir).exit_code == 0, timeout=45, what="a healthy status"
    )
    print(f"healthy again {time.monotonic() - began:.2f}s after the port was given back")


def _bound(sock: socket.socket, port: int) -> bool:
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        return False
    return True


def test_no_server_exits_2_with_one_clear_line(tmp_path: Path) -> None:
    never = status(tmp_path)
    assert never.exit_code == 2
    assert never.stdout == ""
    assert f"no-server: no server recorded in {tmp_path}" in never.stderr
    assert len(never.stderr.strip().splitlines()) == 1

    # A record left behind by a server that is gone (stopped, or killed) is no server either,
    # even if something else now answers on its port.
    ended = subprocess.Popen(["true"])
    ended.wait(timeout=10)
    gone = ended.pid
    RuntimeInfo(
        http_url=f"http://127.0.0.1:{free_port()}",
        broker_host="127.0.0.1",
        broker_port=8883,
        ca_path=None,
        prefix="sevenfold",
        pid=gone,
    ).write(tmp_path)
    stale = status(tmp_path)
    assert stale.exit_code == 2
    assert f"(pid {gone}) is not running" in stale.stderr
    assert len(stale.stderr.strip().splitlines()) == 1

    closed = f"http://127.0.0.1:{free_port()}"
    unreachable = status(tmp_path, "--url", closed)
    assert unreachable.exit_code == 2
    assert f"cannot reach the fleet server at {closed}" in unreachable.stderr


def test_prometheus_text_is_read_with_labels_and_escapes() -> None:
    samples = parse_prometheus(
        "# TYPE sevenfold_gateway_answers_total counter\n"
        'sevenfold_gateway_answers_total{code="ok"} 12\n'
        'sevenfold_gateway_dropped_total{code="a\\"b\\\\c\\nd",site="x"} 3\n'
        "sevenfold_gateway_busy_total 0\n"
        'sevenfold_gateway_latency_seconds{quantile="0.99"} 0.002500\n'
        "not a sample line\n"
        "broken{code=unquoted} 1\n"
    )
    assert [(s.name, s.labels, s.value) for s in samples] == [
        ("sevenfold_gateway_answers_total", {"code": "ok"}, 12.0),
        ("sevenfold_gateway_dropped_total", {"code": 'a"b\\c\nd', "site": "x"}, 3.0),
        ("sevenfold_gateway_busy_total", {}, 0.0),
        ("sevenfold_gateway_latency_seconds", {"quantile": "0.99"}, 0.0025),
    ]
