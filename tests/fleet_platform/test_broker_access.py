"""The grant publisher on a real broker: bursts coalesce, failures are logged once, never raised.

Reloads are counted in mosquitto's own log, which has a line for each one.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Iterator

import pytest

from device_runtime.core.errors import ConfigError
from fleet_platform.broker import MosquittoBroker
from fleet_platform.broker_access import DEFAULT_MIN_INTERVAL, BrokerAccess
from fleet_platform.broker_config import BrokerError
from tests.broker_fixtures import StartBroker

ACCESS_LOG = "fleet_platform.broker_access"
RELOAD_LINE = "Reloading config."


def reloads(broker: MosquittoBroker) -> int:
    return broker.launch_output(lines=10_000).count(RELOAD_LINE)


def wait_for_reloads(broker: MosquittoBroker, count: int, timeout: float = 5.0) -> None:
    """mosquitto logs a reload at its next loop turn after the signal."""
    deadline = time.monotonic() + timeout
    while reloads(broker) < count:
        assert time.monotonic() < deadline, f"{reloads(broker)} reloads, expected {count}"
        time.sleep(0.02)


def records(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == ACCESS_LOG and r.levelno == level]


def test_a_burst_of_changes_is_one_or_two_reloads_and_the_last_set_wins(
    start_broker: StartBroker,
) -> None:
    broker = start_broker()
    with BrokerAccess(broker) as access:
        access.set_grants(["dev-first"])
        assert access.wait_applied()
        wait_for_reloads(broker, 1)
        started = time.monotonic()
        for n in range(200):
            access.set_grants([f"dev-{n}", "dev-always"])
        assert access.requested_version == 201
        assert access.wait_applied(timeout=2.0)
        in_force_s = time.monotonic() - started
        assert broker.granted == ("dev-199", "dev-always")
        assert "user dev-199\n" in (broker.directory / "acl").read_text()
        time.sleep(2 * DEFAULT_MIN_INTERVAL)
        # The first set, then the burst's last one: nothing in between.
        wait_for_reloads(broker, 2)
        assert reloads(broker) == 2
        assert access.applied_version == 201
    assert in_force_s < 1.0


def test_ids_the_protocol_refuses_are_left_out_and_named_once(
    start_broker: StartBroker, caplog: pytest.LogCaptureFixture
) -> None:
    broker = start_broker()
    caplog.set_level(logging.WARNING, logger=ACCESS_LOG)
    with BrokerAccess(broker) as access:
        for _ in range(3):
            access.set_grants(["dev-ok", "dev-a\nuser sevenfold-server", "#", 7])  # type: ignore[list-item]
        assert access.wait_applied()
    assert broker.granted == ("dev-ok",)
    (warning,) = records(caplog, logging.WARNING)
    assert warning.startswith("3 device id(s) cannot be granted")
    assert "sevenfold-server" not in (broker.directory / "acl").read_text().split("user dev-ok")[1]


def test_an_unreadable_set_is_logged_and_the_previous_one_stays(
    start_broker: StartBroker, caplog: pytest.LogCaptureFixture
) -> None:
    def exploding() -> Iterator[str]:
        yield "dev-fine"
        raise RuntimeError("the database went away")

    broker = start_broker(grants=["dev-kept"])
    with BrokerAccess(broker) as access:
        access.set_grants(exploding())
        assert access.requested_version == 0
    assert broker.granted == ("dev-kept",)
    assert any("the database went away" in m for m in records(caplog, logging.ERROR))


def test_a_failure_is_logged_once_per_outage_retried_and_the_recovery_said(
    start_broker: StartBroker, caplog: pytest.LogCaptureFixture
) -> None:
    broker = start_broker()
    acl = broker.directory / "acl"
    with BrokerAccess(broker, retry_interval=0.1) as access:
        # A directory where the file must go: every replacement fails, as root too.
        acl.unlink()
        acl.mkdir()
        for n in range(5):
            access.set_grants([f"dev-{n}"])
            time.sleep(0.15)
        assert not access.wait_applied(timeout=0.5)
        (error,) = records(caplog, logging.ERROR)
        assert "cannot apply the grant set of 1 device(s)" in error
        assert str(acl) in error
        shutil.rmtree(acl)
        assert access.wait_applied()
        assert broker.granted == ("dev-4",)
    assert records(caplog, logging.WARNING) == ["the grant set of 1 device(s) is applied again"]
    assert len(records(caplog, logging.ERROR)) == 1


def test_apply_now_is_in_force_on_return_and_raises_what_went_wrong(
    start_broker: StartBroker,
) -> None:
    broker = start_broker()
    access = BrokerAccess(broker)  # no thread: only apply_now applies
    access.set_grants(["dev-now"])
    assert access.applied_version == 0
    access.apply_now()
    assert broker.granted == ("dev-now",)
    assert access.applied_version == access.requested_version == 1
    assert access.wait_applied(timeout=0)
    wait_for_reloads(broker, 1)
    broker.stop()
    with pytest.raises(BrokerError, match="stopped"):
        access.apply_now()
    access.close()


def test_a_stopped_broker_is_a_logged_failure_not_an_exception(
    start_broker: StartBroker, caplog: pytest.LogCaptureFixture
) -> None:
    broker = start_broker()
    with BrokerAccess(broker) as access:
        broker.stop()
        access.set_grants(["dev-late"])
        assert not access.wait_applied(timeout=0.5)
    (error,) = records(caplog, logging.ERROR)
    assert "was stopped" in error


def test_intervals_must_be_positive_and_a_closed_access_cannot_start(
    start_broker: StartBroker,
) -> None:
    broker = start_broker()
    for options in ({"min_interval": 0}, {"retry_interval": -1.0}):
        with pytest.raises(ConfigError):
            BrokerAccess(broker, **options)
    access = BrokerAccess(broker).start()
    with pytest.raises(ConfigError):
        access.start()
    access.close()
    access.close()
    closed = BrokerAccess(broker)
    closed.close()
    with pytest.raises(ConfigError):
        closed.start()
