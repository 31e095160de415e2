"""The supervisor brings a killed broker back on its port, backs off, reports health, stops clean.

Every test kills a real mosquitto with SIGKILL. Restarts are made to fail by
pointing the broker at a wrapper script that can be switched from running the
real mosquitto to failing or hanging; the switch is an atomic rename, so the
supervisor sees either script whole.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import signal
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from device_runtime.core.errors import ConfigError, SevenfoldError
from fleet_platform.broker import MosquittoBroker
from fleet_platform.pki import CertificateAuthority
from fleet_platform.process_supervisor import (
    ProcessHealth,
    ProcessSupervisor,
    RestartBackoff,
    describe_exit,
)
from tests.broker_fixtures import IssueCredential, session_to
from tests.components import binary, free_port

SUPERVISOR_LOG = "fleet_platform.process_supervisor"
FAST = RestartBackoff(first_delay=0.1, max_delay=0.4, stable_after=60.0)
RESTART_BOUND_S = 5.0
"""Default back-off (0.5 s) + detection (0.1 s) + start-up, with a wide margin for a loaded CI."""


class MosquittoWrapper:
    """An executable standing in for mosquitto: runs the real one until told otherwise."""

    def __init__(self, directory: Path, real: str) -> None:
        self.path = directory / "mosquitto-wrapper"
        self._real = real
        self.run_real()

    def run_real(self) -> None:
        self._write(f'exec {self._real} "$@"')

    def fail(self, message: str) -> None:
        self._write(f'echo "{message}"\nexit 3')

    def hang(self) -> None:
        self._write("exec sleep 30")

    def _write(self, body: str) -> None:
        staging = self.path.with_suffix(".new")
        staging.write_text(f"#!/bin/sh\n{body}\n")
        staging.chmod(0o755)
        staging.replace(self.path)


@pytest.fixture
def wrapper(tmp_path: Path) -> MosquittoWrapper:
    return MosquittoWrapper(tmp_path, binary("mosquitto"))


StartSupervised = Callable[..., ProcessSupervisor]


@pytest.fixture
def supervised(
    fleet_ca: CertificateAuthority, wrapper: MosquittoWrapper, tmp_path: Path
) -> Iterator[StartSupervised]:
    """Callable starting a broker on a free port under a supervisor; all stopped afterwards."""
    started: list[ProcessSupervisor] = []

    def start(
        backoff: RestartBackoff | None = None, ready_timeout: float = 10.0
    ) -> ProcessSupervisor:
        broker = MosquittoBroker.start(
            directory=tmp_path / f"broker-{len(started)}",
            authority=fleet_ca,
            port=free_port(),
            mosquitto=str(wrapper.path),
            ready_timeout=ready_timeout,
        )
        supervisor = ProcessSupervisor(broker, backoff=backoff)
        started.append(supervisor)
        return supervisor.start()

    yield start
    for supervisor in started:
        supervisor.stop()


def kill(supervisor: ProcessSupervisor) -> int:
    pid = supervisor.child.pid
    assert pid is not None and supervisor.child.running
    os.kill(pid, signal.SIGKILL)
    return pid


def alive(pid: int) -> bool:
    """True while *pid* exists, zombies included: a reaped child is gone for good."""
    return Path(f"/proc/{pid}").exists()


def wait_for(
    supervisor: ProcessSupervisor, condition: Callable[[ProcessHealth], bool], timeout: float
) -> ProcessHealth:
    deadline = time.monotonic() + timeout
    while True:
        health = supervisor.health()
        if condition(health):
            return health
        assert time.monotonic() < deadline, f"gave up waiting; last health: {health}"
        time.sleep(0.02)


def mtls_client_connects(supervisor: ProcessSupervisor, issue: IssueCredential) -> bool:
    credential = issue(f"dev-{uuid.uuid4().hex[:8]}")
    session = session_to(supervisor.child, credential, client_id="probe")
    try:
        return session.accepted()
    finally:
        session.close()


def messages(caplog: pytest.LogCaptureFixture, level: int, pattern: str) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == SUPERVISOR_LOG
        and record.levelno == level
        and re.search(pattern, record.getMessage())
    ]


def test_killed_broker_is_back_on_the_same_port_and_serves_mtls_again(
    supervised: StartSupervised,
    client_credentials: IssueCredential,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=SUPERVISOR_LOG)
    supervisor = supervised()
    port = supervisor.child.port
    assert supervisor.health().ok
    before = session_to(supervisor.child, client_credentials("dev-before"), client_id="x")
    assert before.accepted()

    killed_at = time.monotonic()
    old_pid = kill(supervisor)
    health = wait_for(supervisor, lambda h: h.ok and h.restarts == 1, RESTART_BOUND_S)
    latency = time.monotonic() - killed_at
    print(f"restart latency with the default back-off: {latency:.2f}s")

    assert before.disconnected.wait(1.0)
    before.close()
    assert supervisor.child.port == port
    assert health.pid not in (None, old_pid) and not alive(old_pid)
    assert health.last_exit_status == -signal.SIGKILL
    assert health.down_since is None and health.failed_attempts == 0
    assert "running" in health.detail and "killed by SIGKILL" in health.detail
    assert mtls_client_connects(supervisor, client_credentials)
    (death,) = messages(caplog, logging.ERROR, rf":{port} .*killed by SIGKILL")
    assert "mosquitto version" in death, "the error carries the tail of mosquitto's own log"
    assert messages(caplog, logging.WARNING, rf":{port} restarted")


def test_failed_restarts_back_off_report_down_and_recover(
    supervised: StartSupervised,
    wrapper: MosquittoWrapper,
    client_credentials: IssueCredential,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=SUPERVISOR_LOG)
    supervisor = supervised(FAST)
    wrapper.fail("simulated: cannot load the configuration")
    kill(supervisor)
    health = wait_for(supervisor, lambda h: h.failed_attempts >= 4, 10.0)

    assert not health.ok and health.pid is None
    assert health.restarts == 0
    assert health.last_exit_status == -signal.SIGKILL
    assert health.down_since is not None
    assert health.last_error is not None and "exited with status 3" in health.last_error
    assert "simulated: cannot load the configuration" in health.last_error
    assert "down since" in health.detail and "restart attempt(s) failed" in health.detail
    assert health.as_json()["down_since"] == health.down_since.isoformat()
    failures = [
        record.created
        for record in caplog.records
        if record.name == SUPERVISOR_LOG and "restarting mosquitto" in record.getMessage()
    ]
    gaps = [later - earlier for earlier, later in itertools.pairwise(failures)]
    # After failed attempt n the supervisor waits FAST.delay(n): 0.2, 0.4, then the 0.4 cap.
    for gap, delay in zip(gaps, (0.2, 0.4, 0.4), strict=False):
        assert gap >= delay - 0.01, f"gaps {gaps} do not back off"

    wrapper.run_real()
    health = wait_for(supervisor, lambda h: h.ok, 5.0)
    assert health.restarts == 1 and health.failed_attempts == 0
    assert health.down_since is None and health.last_error is None
    assert mtls_client_connects(supervisor, client_credentials)


def test_restart_onto_a_port_someone_took_fails_clearly_until_it_is_free(
    supervised: StartSupervised,
    client_credentials: IssueCredential,
) -> None:
    supervisor = supervised(RestartBackoff(first_delay=0.3, max_delay=0.3))
    port = supervisor.child.port
    pid = kill(supervisor)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        deadline = time.monotonic() + 2.0
        while True:
            try:
                squatter.bind(("127.0.0.1", port))
                break
            except OSError:
                assert time.monotonic() < deadline, f"port {port} stayed bound after kill"
                time.sleep(0.001)
        squatter.listen(1)
        health = wait_for(supervisor, lambda h: h.failed_attempts >= 1, 5.0)
    assert not alive(pid)
    assert not health.ok
    assert health.last_error is not None
    assert f"port {port} on 127.0.0.1 is already in use" in health.last_error
    assert "--broker-port" in health.last_error
    assert wait_for(supervisor, lambda h: h.ok, 5.0).name == supervisor.child.name
    assert mtls_client_connects(supervisor, client_credentials)


def test_back_off_starts_over_once_the_broker_stayed_up(
    supervised: StartSupervised, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=SUPERVISOR_LOG)
    supervisor = supervised(RestartBackoff(first_delay=0.1, max_delay=3.0, stable_after=1.0))
    planned = []
    for restarts, pause in ((1, 0.0), (2, 0.0), (3, 1.2)):
        time.sleep(pause)
        kill(supervisor)
        wait_for(supervisor, lambda h, n=restarts: h.ok and h.restarts == n, 5.0)
        (death,) = messages(caplog, logging.ERROR, "killed by SIGKILL")[-1:]
        planned.append(float(re.findall(r"restarting in ([0-9.]+)s", death)[0]))
    # Quick deaths double the wait; one after a stable second starts over.
    assert planned == [0.1, 0.2, 0.1]


def test_stop_ends_the_broker_and_nothing_restarts_it(
    supervised: StartSupervised, wrapper: MosquittoWrapper
) -> None:
    supervisor = supervised(FAST)
    pid = supervisor.child.pid
    assert pid is not None
    supervisor.stop()
    assert not alive(pid)
    time.sleep(3 * FAST.max_delay)
    assert not supervisor.child.running and supervisor.child.pid == pid
    health = supervisor.health()
    assert not health.ok and health.detail.endswith("is stopped")
    with pytest.raises(SevenfoldError, match="was stopped"):
        supervisor.child.relaunch()
    supervisor.stop()


def test_stop_during_a_restart_attempt_leaves_no_process(
    supervised: StartSupervised, wrapper: MosquittoWrapper
) -> None:
    supervisor = supervised(FAST, ready_timeout=30.0)
    wrapper.hang()
    first = kill(supervisor)
    deadline = time.monotonic() + 5.0
    while supervisor.child.pid == first or not supervisor.child.running:
        assert time.monotonic() < deadline, "no restart attempt was made"
        time.sleep(0.01)
    hanging = supervisor.child.pid
    assert hanging is not None and not supervisor.health().ok
    began = time.monotonic()
    supervisor.stop()
    assert time.monotonic() - began < 5.0
    assert not alive(hanging) and not alive(first)
    wrapper.run_real()
    time.sleep(3 * FAST.max_delay)
    assert supervisor.child.pid == hanging and not supervisor.child.running


def test_supervising_a_broker_that_is_not_running_is_refused(
    fleet_ca: CertificateAuthority, tmp_path: Path
) -> None:
    with MosquittoBroker.start(
        directory=tmp_path, authority=fleet_ca, port=free_port(), mosquitto=binary("mosquitto")
    ) as broker:
        assert broker.pid is not None
        os.kill(broker.pid, signal.SIGKILL)
        deadline = time.monotonic() + 5.0
        while broker.running:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        with pytest.raises(SevenfoldError, match=r"not running \(killed by SIGKILL\)"):
            ProcessSupervisor(broker).start()
    with pytest.raises(SevenfoldError, match="was stopped"):
        ProcessSupervisor(broker).start()


def test_back_off_doubles_to_its_cap_and_rejects_nonsense() -> None:
    backoff = RestartBackoff()
    assert [backoff.delay(n) for n in range(8)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    assert backoff.delay(10_000) == 30
    for bad in (
        {"first_delay": 0},
        {"first_delay": 5, "max_delay": 1},
        {"stable_after": 0},
    ):
        with pytest.raises(ConfigError):
            RestartBackoff(**bad)  # type: ignore[arg-type]


def test_exit_descriptions_name_signals_and_statuses() -> None:
    assert describe_exit(-signal.SIGKILL) == "killed by SIGKILL"
    assert describe_exit(3) == "exited with status 3"
    assert describe_exit(None) == "still running"
