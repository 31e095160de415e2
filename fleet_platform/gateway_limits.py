"""How much work the gateway takes on, per device and in total.

Apart from the gateway so that configuration (and the command line, which a
sensor install also runs) can name the limits without loading the MQTT and
database libraries.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewayLimits:
    """How much work the gateway takes on, per device and in total."""

    workers: int | None = None
    """Worker threads; by default one on SQLite (which has one writer at a time, so a
    second would only wait for the lock) and two on PostgreSQL (one waits on the
    network while the other works)."""
    batch: int = 64
    per_device_queue: int = 32
    total_queue: int = 4096
    rate: float = 5.0
    """Sustained requests per second per device."""
    burst: int = 20
    """Requests a device may send at once before its rate applies."""
    busy_retry_min_ms: int = 250
    busy_retry_max_ms: int = 30_000
