"""Legacy assets and monitor alerts on both engines, and migration 0002 against the models."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from device_runtime.core.errors import StorageError
from fleet_platform.storage import Database, open_database
from fleet_platform.storage.schema import head_revision
from fleet_platform.storage.tables import Base
from passive_monitor.alerts.model import Alert, Evidence, Party, alert_id
from passive_monitor.inventory import Asset
from passive_monitor.receiver.store import AssetRegistry
from passive_monitor.site import check_site
from sevenfold.server import MIGRATIONS

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=5)
NEW_TABLES = {"legacy_assets", "monitor_alerts"}


def _asset(ip: str, **fields: Any) -> dict[str, Any]:
    asset = Asset(
        ip=ip,
        macs=("00:0e:8c:01:02:03",),
        roles=(("modbus", "server"), ("s7comm", "server")),
        services=("tcp/102", "tcp/502"),
        first_seen=1_700_000_000.0,
        last_seen=1_700_000_100.0,
        **fields,
    )
    return asset.to_dict()


def _alert(rule: str, *, count: int, title: str = "Unlearned write") -> dict[str, Any]:
    return Alert(
        id=alert_id(rule, "10.0.0.5", "10.0.0.9", "modbus", "write"),
        rule=rule,
        engine="policy",
        severity="high",
        title=title,
        description="A write no baseline contains",
        protocol="modbus",
        function="write",
        client=Party(ip="10.0.0.5", port=40000),
        server=Party(ip="10.0.0.9", port=502),
        technique="T0855",
        evidence=(Evidence(frame=7, ts=1_700_000_007.5),),
        count=count,
        first_seen=1_700_000_007.5,
        last_seen=1_700_000_100.0 + count,
    ).to_dict()


def test_assets_are_upserted_per_site_and_ordered_by_address(database: Database) -> None:
    registry = AssetRegistry(database=database)
    s7 = _asset("10.0.0.10", vendor="Siemens", product="6ES7 315-2EH14-0AB0", firmware="V3.2.6")
    assert registry.upsert_assets("plant-a", [s7, _asset("10.0.0.9")], now=NOW) == 2
    assert registry.upsert_assets("plant-b", [_asset("10.0.0.9")], now=NOW) == 1

    changed = _asset("10.0.0.10", vendor="Siemens", firmware="V3.3.0", serial="S C-X4U421302009")
    assert registry.upsert_assets("plant-a", [changed], now=LATER) == 1

    listed = registry.list_assets("plant-a")
    assert [record.ip for record in listed] == ["10.0.0.9", "10.0.0.10"]
    refreshed = listed[1]
    assert (refreshed.first_seen, refreshed.last_seen) == (NOW, LATER)
    assert (refreshed.vendor, refreshed.product) == ("Siemens", None)
    assert (refreshed.firmware, refreshed.serial) == ("V3.3.0", "S C-X4U421302009")
    assert refreshed.protocols == ("modbus", "s7comm")
    assert Asset.from_dict(refreshed.document()) == Asset.from_dict(changed)
    assert [(r.site, r.ip) for r in registry.list_assets()] == [
        ("plant-a", "10.0.0.9"),
        ("plant-a", "10.0.0.10"),
        ("plant-b", "10.0.0.9"),
    ]


def test_one_host_in_two_spellings_or_twice_in_a_batch_is_one_row(database: Database) -> None:
    registry = AssetRegistry(database=database)
    first = _asset("2001:db8:0:0::1", vendor="old")
    second = _asset("2001:DB8::1", vendor="new")
    assert registry.upsert_assets("plant-a", [first, second], now=NOW) == 1
    (record,) = registry.list_assets()
    assert (record.ip, record.vendor) == ("2001:db8::1", "new")
    assert record.document()["ip"] == "2001:db8::1"


def test_ten_thousand_assets_in_one_call(database: Database) -> None:
    registry = AssetRegistry(database=database)
    assets = [{"ip": f"10.{n // 65536}.{n // 256 % 256}.{n % 256}"} for n in range(10_000)]
    assert registry.upsert_assets("big-site", assets, now=NOW) == 10_000
    assert registry.upsert_assets("big-site", assets, now=LATER) == 10_000
    listed = registry.list_assets("big-site")
    assert len(listed) == 10_000
    assert {record.last_seen for record in listed} == {LATER}


def test_resent_alerts_update_count_and_last_seen(database: Database) -> None:
    registry = AssetRegistry(database=database)
    assert registry.record_alerts("plant-a", [_alert("unlearned-write", count=3)], now=NOW) == 1
    assert registry.record_alerts("plant-a", [_alert("unlearned-write", count=9)], now=LATER) == 1
    (record,) = registry.list_alerts()
    assert (record.count, record.first_seen, record.last_seen) == (9, NOW, LATER)
    assert record.document()["count"] == 9
    assert Alert.from_dict(record.document()).technique == "T0855"

    # A restarted sensor counts from one again; the fleet's count does not go back.
    registry.record_alerts("plant-a", [_alert("unlearned-write", count=1)], now=LATER)
    (record,) = registry.list_alerts()
    assert record.count == 9


def test_same_alert_id_at_two_sites_is_two_alerts(database: Database) -> None:
    registry = AssetRegistry(database=database)
    alert = _alert("unlearned-write", count=2)
    registry.record_alerts("plant-a", [alert], now=NOW)
    registry.record_alerts("plant-b", [alert, _alert("unlearned-write", count=5)], now=LATER)
    assert [(r.site, r.count) for r in registry.list_alerts()] == [("plant-b", 5), ("plant-a", 2)]
    assert [r.site for r in registry.list_alerts("plant-a")] == ["plant-a"]
    assert len(registry.list_alerts(limit=1)) == 1


@pytest.mark.parametrize(
    ("assets", "reason"),
    [
        ([{"ip": "10.0.0.300"}], "not an IP address"),
        ([{"ip": 167772161}], "must be an IP address"),
        ([{"vendor": "x"}], "must be an IP address"),
        ([{"ip": "10.0.0.1", "vendor": 5}], "vendor must be a string"),
        ([{"ip": "10.0.0.1", "roles": {"mod,bus": ["server"]}}], "no comma"),
        ([{"ip": "10.0.0.1", "first_seen": float("nan")}], "not representable"),
        (["10.0.0.1"], "mapping"),
    ],
)
def test_malformed_assets_are_refused(database: Database, assets: list[Any], reason: str) -> None:
    registry = AssetRegistry(database=database)
    with pytest.raises(ValueError, match=reason):
        registry.upsert_assets("plant-a", assets, now=NOW)
    assert registry.list_assets() == []


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"count": 0}, "count"),
        ({"count": True}, "count"),
        ({"count": 2**63}, "count"),
        ({"id": ""}, "alert id"),
        ({"severity": None}, "severity"),
    ],
)
def test_malformed_alerts_are_refused(
    database: Database, change: dict[str, Any], reason: str
) -> None:
    registry = AssetRegistry(database=database)
    with pytest.raises(ValueError, match=reason):
        registry.record_alerts("plant-a", [{**_alert("r", count=1), **change}], now=NOW)
    assert registry.list_alerts() == []


@pytest.mark.parametrize("site", ["", "Plant", "-plant", "plant_a", "a" * 64, "plant/../x", 7])
def test_site_names_follow_the_device_id_rule(database: Database, site: Any) -> None:
    registry = AssetRegistry(database=database)
    with pytest.raises(ValueError, match="site"):
        registry.upsert_assets(site, [_asset("10.0.0.1")], now=NOW)
    with pytest.raises(ValueError, match="site"):
        check_site(site)
    assert check_site("plant-7") == "plant-7"


def test_naive_timestamps_and_bad_limits_are_refused(database: Database) -> None:
    registry = AssetRegistry(database=database)
    with pytest.raises(ValueError, match="timezone"):
        registry.upsert_assets("plant-a", [_asset("10.0.0.1")], now=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="limit"):
        registry.list_alerts(limit=0)
    assert registry.upsert_assets("plant-a", [], now=NOW) == 0
    assert registry.record_alerts("plant-a", [], now=NOW) == 0


def test_database_failure_is_a_storage_error(database: Database) -> None:
    registry = AssetRegistry(database=database)
    database.downgrade(revision="0001")
    with pytest.raises(StorageError, match="upsert assets failed"):
        registry.upsert_assets("plant-a", [_asset("10.0.0.1")], now=NOW)
    with pytest.raises(StorageError, match="list alerts failed"):
        registry.list_alerts()


def test_models_match_migrations_with_the_new_tables(database: Database) -> None:
    assert database.revision() == head_revision(MIGRATIONS)
    assert set(inspect(database.engine).get_table_names()) >= NEW_TABLES
    with database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_upgrade_downgrade_through_0002(database_url: str) -> None:
    with open_database(database_url, migrations=MIGRATIONS) as database:
        database.upgrade(revision="0001")
        assert not set(inspect(database.engine).get_table_names()) & NEW_TABLES
        database.upgrade()
        registry = AssetRegistry(database=database)
        registry.upsert_assets("plant-a", [_asset("10.0.0.1")], now=NOW)
        registry.record_alerts("plant-a", [_alert("r", count=1)], now=NOW)

        database.downgrade(revision="0001")
        assert database.revision() == "0001"
        tables = set(inspect(database.engine).get_table_names())
        assert not tables & NEW_TABLES
        assert {"devices", "device_events"} <= tables

        database.upgrade()
        assert database.revision() == head_revision(MIGRATIONS)
        assert registry.list_assets() == [] and registry.list_alerts() == []
        registry.upsert_assets("plant-a", [_asset("10.0.0.1")], now=NOW)
        assert len(registry.list_assets()) == 1
