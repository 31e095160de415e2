"""The server's keeper of the broker's grants, against a real Mosquitto and a real database."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, text

from attestation_server.tables import DeviceTrust
from attestation_server.trust_store import TrustStore
from fleet_platform.storage import Database
from sevenfold.broker_grants import BrokerGrants
from tests.broker_fixtures import StartBroker

pytestmark = pytest.mark.timeout(60)


def _pass(database: Database, device_id: str, until: datetime) -> None:
    with database.transaction("a pass") as tx:
        tx.execute(
            insert(DeviceTrust).values(
                device_id=device_id, group_name="default", status="affirming", code="ok",
                pass_until=until,
            )
        )  # fmt: skip


def test_passes_reach_the_broker_and_lapse_even_while_the_database_is_gone(
    database: Database, start_broker: StartBroker
) -> None:
    broker = start_broker()
    now = datetime.now(UTC)
    _pass(database, "dev-long", now + timedelta(hours=1))
    _pass(database, "dev-short", now + timedelta(seconds=2))
    _pass(database, "dev-gone", now - timedelta(seconds=1))
    grants = BrokerGrants(store=TrustStore(database=database), broker=broker)
    grants.refresh()
    assert broker.granted == ("dev-long", "dev-short")
    assert grants.health().ok
    with database.transaction("lose the table") as tx:
        tx.execute(text("DROP TABLE device_trust"))
    stopping = threading.Event()
    keeper = threading.Thread(target=grants.keep, args=(stopping,), daemon=True)
    keeper.start()
    deadline = time.monotonic() + 10
    while broker.granted != ("dev-long",):
        assert time.monotonic() < deadline, f"the expired pass stayed granted: {broker.granted}"
        time.sleep(0.2)
    stopping.set()
    keeper.join(timeout=5)
