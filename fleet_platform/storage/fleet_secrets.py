"""Secrets every replica of one fleet must agree on: generated once, kept in the database.

The first replica to ask creates a secret (an insert that does nothing if the
row exists) and every replica reads back the one that won, so replicas that
share a database share the secret with no configuration step to forget. What
needs one today: the name of the MQTT share group the gateways subscribe in,
which a device must not be able to guess.
"""

from __future__ import annotations

import secrets
from typing import cast

from sqlalchemy import Table, Text, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, mapped_column

from fleet_platform.storage.engine import Database
from fleet_platform.storage.tables import Base

SHARE_GROUP = "mqtt-share-group"


class FleetSecret(Base):
    """One named secret of the fleet."""

    __tablename__ = "fleet_secrets"

    name: Mapped[str] = mapped_column(Text, primary_key=True)
    value: Mapped[str] = mapped_column(Text)


_SECRETS = cast(Table, FleetSecret.__table__)


def fleet_secret(database: Database, name: str) -> str:
    """The fleet's secret *name*, created at random by whichever replica asks first."""
    dialect = sqlite if database.dialect == "sqlite" else postgresql
    candidate = secrets.token_urlsafe(32)
    with database.transaction(f"read the fleet secret {name}") as connection:
        connection.execute(
            dialect.insert(_SECRETS)
            .values(name=name, value=candidate)
            .on_conflict_do_nothing(index_elements=[_SECRETS.c.name])
        )
        value = connection.execute(
            select(_SECRETS.c.value).where(_SECRETS.c.name == name)
        ).scalar_one()
    return str(value)
