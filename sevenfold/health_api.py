"""``/healthz`` and ``/metrics``: is this server process doing its job, and how much of it.

``/healthz`` is for load balancers and process supervisors, so it needs no
token and says only which parts are up (no counters, no addresses beyond the
broker the operator configured); it answers 503 when any part is down, so a
dead gateway worker or a lost broker takes the replica out of rotation instead
of leaving it answering 200 to REST while no device is served. ``/metrics``
carries the counters in Prometheus' format and needs the operator token.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from fastapi import APIRouter, Depends, Response
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel

from fleet_platform.health import Health
from fleet_platform.metrics import Metrics

HealthCheck = Callable[[], Health]


class CheckView(BaseModel):
    ok: bool
    detail: str


class HealthView(BaseModel):
    status: str
    """``ok`` when every check passes, else ``unhealthy``."""
    checks: dict[str, CheckView]


def router(
    *,
    checks: Mapping[str, HealthCheck],
    metrics: Metrics,
    authorized: Callable[..., None],
) -> APIRouter:
    api = APIRouter(tags=["health"])

    @api.get("/healthz", responses={503: {"model": HealthView}})
    def healthz(response: Response) -> HealthView:
        results = {name: _run(check) for name, check in checks.items()}
        healthy = all(result.ok for result in results.values())
        if not healthy:
            response.status_code = 503
        return HealthView(
            status="ok" if healthy else "unhealthy",
            checks={name: CheckView(ok=r.ok, detail=r.detail) for name, r in results.items()},
        )

    @api.get("/metrics", dependencies=[Depends(authorized)], response_class=PlainTextResponse)
    def prometheus() -> str:
        return metrics.prometheus()

    return api


def _run(check: HealthCheck) -> Health:
    """A check that raises is a failed check, not a failed probe."""
    try:
        return check()
    except Exception as exc:
        return Health(False, f"the check itself failed: {type(exc).__name__}")
