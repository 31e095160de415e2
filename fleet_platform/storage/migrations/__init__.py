"""Alembic migrations of the fleet server's database, shipped with the package."""
