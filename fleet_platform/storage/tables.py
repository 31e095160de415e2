"""The declarative base every service's tables share.

Each service owns its tables (the device registry belongs to the attestation
server, legacy assets to the monitor's receiving end); they share one metadata
and one naming convention so constraint names are the same on every engine
and migrations can address them.
"""

from __future__ import annotations

from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Deterministic constraint names, so migrations can address them on every engine."""


class Base(DeclarativeBase):
    """Declarative root holding the shared metadata and naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
