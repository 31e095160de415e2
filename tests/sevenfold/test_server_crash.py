"""``sevenfold server`` on SQLite killed with SIGKILL mid-traffic, then started again.

The server runs as the operator runs it, a separate process; its managed
mosquitto must die with it (PR_SET_PDEATHSIG), so nothing holds the broker port
when the server is started again on the same state directory and port. The
database a killed server leaves behind must pass SQLite's integrity check and
hold every heartbeat the server acknowledged (it answers only after commit),
and the devices, reconnecting by themselves, must be served by the new process.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from fleet_platform import api_tokens
from fleet_platform.server_config import RuntimeInfo
from sevenfold.cli.app import app
from tests.components import binary, free_port
from tests.sevenfold.cli.hostile_text import WIDE
from tests.sevenfold.resilience_support import HeartbeatDriver, ProbeDevice, healthz, wait_until

DEVICES = ("crash-dev-1", "crash-dev-2", "crash-dev-3")
START_TIMEOUT_S = 30.0


class ServerProcess:
    """``python -m sevenfold.cli server`` on one state directory and broker port."""

    def __init__(self, state: Path, broker_port: int, log: Path) -> None:
        self.state = state
        self.broker_port = broker_port
        self.recovery_port = free_port()
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> RuntimeInfo:
        """Launch it and return its record once it is written and ``/healthz`` says 200."""
        command = [sys.executable, "-m", "sevenfold.cli", "server", "--state", str(self.state)]
        command += ["--http-port", "0", "--broker-port", str(self.broker_port)]
        # Its devices hold fleet certificates without attesting: no gate.
        command += ["--broker-recovery-port", str(self.recovery_port), "--no-attestation-gate"]
        with self.log.open("ab") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        self.process = process

        def ready() -> RuntimeInfo | None:
            assert process.poll() is None, f"the server exited:\n{self.log_tail()}"
            info = RuntimeInfo.read(self.state)
            if info is None or info.pid != process.pid:
                return None
            return info if healthz(info.http_url)[0] == 200 else None

        return wait_until(ready, timeout=START_TIMEOUT_S, what="the server to start")

    def kill(self) -> int:
        process = self.process
        assert process is not None and process.poll() is None
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        return process.pid

    def stop(self) -> int | None:
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        return process.returncode

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    binary("mosquitto")
    process = ServerProcess(tmp_path / "state", free_port(), tmp_path / "server.log")
    yield process
    process.stop()


def children_named(pid: int, name: str) -> list[int]:
    """Live child processes of *pid* running *name*."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        command = stat[stat.index("(") + 1 : stat.rindex(")")]
        parent = int(stat[stat.rindex(")") + 2 :].split()[1])
        if parent == pid and command == name:
            found.append(int(entry.name))
    return found


def stored_seqs(database: Path) -> tuple[str, dict[str, int | None]]:
    """SQLite's integrity verdict and each device's stored ``last_seq``, read-only.

    Read-only so that the WAL the killed server left is recovered by the next
    server, not by this check.
    """
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        verdict = "; ".join(row[0] for row in connection.execute("PRAGMA integrity_check"))
        rows = connection.execute("SELECT device_id, last_seq FROM devices").fetchall()
    finally:
        connection.close()
    return verdict, dict(rows)


def status_exit(state: Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["server", "status", "--state", str(state)], env=WIDE)
    return result.exit_code, result.output


def test_server_killed_mid_traffic_restarts_with_every_ack_stored(server: ServerProcess) -> None:
    info = server.start()
    assert info.broker_host and info.broker_port == server.broker_port and info.ca_path
    drivers = []
    for device_id in DEVICES:
        device = ProbeDevice(
            state_dir=server.state,
            device_id=device_id,
            host=info.broker_host,
            port=info.broker_port,
            ca_path=Path(info.ca_path),
        ).connect()
        device.enroll()
        drivers.append(HeartbeatDriver(device, reconnect=True).start())
    try:
        wait_until(
            lambda: all(driver.acked_beyond(8) for driver in drivers),
            timeout=20,
            what="heartbeats to be acknowledged",
        )
        brokers = children_named(info.pid, "mosquitto")
        assert len(brokers) == 1, f"expected one managed mosquitto, found {brokers}"
        killed_at = time.monotonic()
        server.kill()
        wait_until(
            lambda: (
                not children_named(info.pid, "mosquitto")
                and not Path(f"/proc/{brokers[0]}").exists()
            ),
            timeout=10,
            what="the managed mosquitto to die with its server",
        )
        # The server and its broker are gone: what the devices saw acknowledged is the floor.
        acked = {
            device_id: driver.traffic.last_acked
            for device_id, driver in zip(DEVICES, drivers, strict=True)
        }
        verdict, stored = stored_seqs(server.state / "sevenfold.db")
        assert verdict == "ok"
        for device_id, seq in acked.items():
            kept = stored[device_id]
            assert kept is not None and kept >= seq, (
                f"{device_id}: acknowledged {seq}, stored {kept} after the kill"
            )
        code, shown = status_exit(server.state)
        assert code == 2 and f"(pid {info.pid}) is not running" in shown, shown

        restarted = server.start()
        started_again = time.monotonic() - killed_at
        assert restarted.broker_port == server.broker_port
        assert restarted.http_url != "" and restarted.pid != info.pid
        wait_until(
            lambda: all(
                driver.acked_beyond(acked[d]) for d, driver in zip(DEVICES, drivers, strict=True)
            ),
            timeout=30,
            what="the reconnected devices to be served again",
        )
        served_again = time.monotonic() - killed_at
        code, shown = status_exit(server.state)
        assert code == 0, shown
    finally:
        traffic = [driver.stop() for driver in drivers]
        for driver in drivers:
            driver.device.close()

    token = api_tokens.read(server.state)
    rows = httpx.get(
        f"{restarted.http_url}/api/v1/devices",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    ).json()
    served = {row["device_id"]: row["last_seq"] for row in rows}
    for device_id, seen in zip(DEVICES, traffic, strict=True):
        assert served[device_id] >= seen.last_acked, f"{device_id}: {served[device_id]} < {seen}"
        assert seen.codes["internal"] == 0
    assert server.stop() == 0, server.log_tail()
    verdict, _ = stored_seqs(server.state / "sevenfold.db")
    assert verdict == "ok"
    print(
        f"server kill -9: restarted and healthy {started_again:.2f}s after the kill,"
        f" every device served again after {served_again:.2f}s"
    )
