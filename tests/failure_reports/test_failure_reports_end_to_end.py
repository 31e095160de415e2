"""``failure-report`` through the whole server: real devices, Mosquitto over mutual TLS, two
gateways, the database (SQLite and PostgreSQL: the update-report tests' fleet).

Each device is the real agent with the CPython ports: it enrolls, its failure capture
fills a flash-like outbox with a crash, a reboot reason and a week's metrics, and
:func:`failure_report.upload` drains it in batches. The devices upload at once; every
record is stored exactly once, with the hardware model the device enrolled with, and
every outbox ends empty. A batch whose acknowledgement the device never acted on is sent
again and stores nothing more.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from device_runtime.core import failure_report
from device_runtime.core.failure_capture import FailureCapture
from device_runtime.core.outbox import Outbox
from device_runtime.ports.cpython.block_device import FileBlockDevice
from device_runtime.ports.cpython.clock import SystemClock
from device_runtime.ports.cpython.exception_frames import exception_frames
from failure_reports.failure_store import FailureStore
from fleet_platform.pki import fleet_authority
from sevenfold.server import FleetServer
from tests.device_runtime.cpython_devices import device_agent, device_transport
from tests.update_service.test_update_reports import fleet

__all__ = ["fleet"]

pytestmark = [pytest.mark.timeout(300), pytest.mark.xdist_group("fleet-server")]

DEVICES = 4
METRICS = 120
"""Records per device beyond its crash and reboot: a few batches' worth."""


def stalled_sensor() -> None:
    raise TimeoutError("sensor did not answer in 50 ms")


def one_device(fleet: FleetServer, index: int, tmp: Path) -> tuple[str, int, int]:
    device_id = f"fr-dev-{index}"
    assert fleet.broker is not None
    transport = device_transport(
        authority=fleet_authority(fleet.config.state_dir),
        port=fleet.broker.port,
        device_id=device_id,
        directory=tmp / device_id,
    )
    agent = device_agent(
        device_id=device_id, transport=transport, state=tmp / device_id / "state", timeout_ms=10000
    )
    try:
        agent.boot()
        agent.enroll()
        outbox = Outbox(
            FileBlockDevice(path=tmp / device_id / "outbox", size=32768, erase_size=4096),
            agent.boot_count,
        )
        failures = FailureCapture(outbox, SystemClock(), "3.1.0", exception_frames)
        try:
            stalled_sensor()
        except TimeoutError as exc:
            failures.crash(exc)
        failures.reboot("hardware-watchdog")
        for n in range(METRICS):
            failures.metrics(free_mem=30000 - n, reconnects=n % 3)
        unacted = outbox.batch(failure_report.MAX_BATCH)
        answer = agent.idempotent_request(failure_report.KIND, {"records": unacted})
        first = int(answer["recorded"])
        assert failure_report.upload(agent, outbox) == 0
        assert outbox.pending() == 0
        return device_id, first, outbox.seq
    finally:
        transport.close()


def test_devices_drain_their_outboxes_and_each_record_is_stored_once(
    fleet: FleetServer, tmp_path: Path
) -> None:
    with ThreadPoolExecutor(DEVICES) as pool:
        results = list(pool.map(lambda i: one_device(fleet, i, tmp_path), range(DEVICES)))
    assert fleet.database is not None
    store = FailureStore(database=fleet.database)
    for device_id, first_batch, written in results:
        assert written == METRICS + 2
        assert first_batch > 1, "the first batch held several records"
        assert store.count(device_id) == written, "each record once, the resent batch included"
        assert store.missing(device_id) == 0
        rows = store.rows(device_id)
        assert rows[0]["kind"] == "crash" and rows[0]["code"] == "TimeoutError"
        assert rows[0]["hwmodel"] == "board", "the model it enrolled with, not a payload's"
        assert rows[1]["code"] == "hardware-watchdog"
