"""The fleet server's receiving end for passive sensors: legacy assets and alerts.

Runs on the server, never on a sensor: it is the only part of
``passive_monitor`` that needs the server's dependencies.
"""

from pathlib import Path

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
"""Alembic versions of this service's tables (legacy assets, monitor alerts)."""
