"""The failure-report service as the server composes it: its records carry the hardware
model each device enrolled with, which only the attestation server's registry knows (no
service imports another, so the lookup is made here and handed in)."""

from __future__ import annotations

from typing import cast

from sqlalchemy import Connection, Table, select

from attestation_server.tables import Device
from failure_reports.failure_ingest import FailureReports
from failure_reports.failure_store import FailureStore
from fleet_platform.storage import Database

_DEVICES = cast(Table, Device.__table__)


def enrolled_hardware_model(tx: Connection, device_id: str) -> str | None:
    """The hardware model the registry holds for *device_id*, if it enrolled."""
    found = tx.execute(select(_DEVICES.c.hwmodel).where(_DEVICES.c.device_id == device_id))
    return cast("str | None", found.scalar_one_or_none())


def failure_report_handler(database: Database) -> FailureReports:
    """The ``failure-report`` handler over *database*, hardware models from the registry."""
    return FailureReports(FailureStore(database=database), enrolled_hardware_model)
