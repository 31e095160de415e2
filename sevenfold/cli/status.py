"""``sevenfold server status``: is the local fleet server doing its job, in one look.

It reads what ``/healthz`` says about each part (database, gateway, managed
broker) and the gateway counters ``/metrics`` exposes, and answers with an exit
status a script or a process supervisor can act on: 0 healthy, 1 running but
unhealthy, 2 no server to ask. The health verdict needs no token, so a status
is still given when the operator token cannot be read; the counters then are
missing, with a warning saying why.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import typer

from device_runtime.core.errors import SevenfoldError
from fleet_platform import api_tokens
from fleet_platform.server_config import RuntimeInfo
from sevenfold.api_client import (
    FleetClient,
    HealthReport,
    Sample,
    fetch_health,
    recorded_server,
)
from sevenfold.cli.options import JsonOption, StateOption, UrlOption, state_dir
from sevenfold.cli.output import Part, emit_json, literal_table, reported_errors, say, show, warn

EXIT_HEALTHY = 0
EXIT_UNHEALTHY = 1
EXIT_NO_SERVER = 2
"""Also what :func:`~sevenfold.cli.output.reported_errors` exits with."""

KEY_COUNTERS = (
    "sevenfold_gateway_answers_total",
    "sevenfold_gateway_internal_errors_total",
    "sevenfold_gateway_dropped_total",
    "sevenfold_gateway_busy_total",
    "sevenfold_gateway_rate_limited_total",
    "sevenfold_gateway_disconnects_total",
)
"""The counters an operator looks at first, shown even at zero (an unmoved counter is absent)."""

LATENCY = "sevenfold_gateway_latency_seconds"


def status(
    state: StateOption = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Health of the running server (checks and key counters); exit 0 ok, 1 unhealthy, 2 none."""
    directory = state_dir(state)
    metrics_error: str | None = None
    samples: list[Sample] | None = None
    with reported_errors():
        info = None if url is not None else recorded_server(directory)
        base = url if url is not None else _url_of(info)
        report = fetch_health(base)
        token = api_tokens.read(directory)
        if token is None:
            metrics_error = f"no operator token in {directory}, so no counters"
        else:
            try:
                samples = FleetClient(url=base, token=token).metrics()
            except SevenfoldError as exc:
                metrics_error = f"no counters: {exc.reason}"
    if as_json:
        emit_json(_as_json(report, info, samples, metrics_error))
    else:
        _show(report, info, samples, metrics_error)
    raise typer.Exit(EXIT_HEALTHY if report.healthy else EXIT_UNHEALTHY)


def _url_of(info: RuntimeInfo | None) -> str:
    assert info is not None, "recorded_server returns a record or raises"
    return info.http_url


def _as_json(
    report: HealthReport,
    info: RuntimeInfo | None,
    samples: list[Sample] | None,
    metrics_error: str | None,
) -> dict[str, Any]:
    return {
        "healthy": report.healthy,
        "health": report.as_json(),
        "server": None if info is None else _record(info),
        "metrics": None if samples is None else [sample.as_json() for sample in samples],
        "metrics_error": metrics_error,
    }


def _record(info: RuntimeInfo) -> dict[str, Any]:
    return {
        "pid": info.pid,
        "http_url": info.http_url,
        "broker_host": info.broker_host,
        "broker_port": info.broker_port,
        "prefix": info.prefix,
    }


def _show(
    report: HealthReport,
    info: RuntimeInfo | None,
    samples: list[Sample] | None,
    metrics_error: str | None,
) -> None:
    show(
        literal_table(
            headers=("check", "status", "detail"),
            title=f"fleet server at {report.url}",
            rows=(
                (name, ("ok", "green") if check.ok else ("FAILING", "bold red"), check.detail)
                for name, check in report.checks.items()
            ),
        )
    )
    if samples is not None:
        show(
            literal_table(
                headers=("counter", "label", "value"), title="gateway", rows=_rows(samples)
            )
        )
    if metrics_error is not None:
        warn(metrics_error)
    where: list[Part] = [f"fleet server at {report.url}"]
    if info is not None:
        where.append(f" (pid {info.pid})")
        if info.broker_host is not None:
            where.append(f", broker {info.broker_host}:{info.broker_port}")
    if report.healthy:
        say(*where, ": ", ("healthy", "bold green"))
    else:
        failing = ", ".join(report.failing) or f"HTTP {report.http_status}"
        say(*where, ": ", ("unhealthy", "bold red"), f" ({failing})")


def _rows(samples: list[Sample]) -> Iterator[tuple[Part, ...]]:
    """One row per label of each key counter (a total of 0 when it never moved), then latency."""
    for name in KEY_COUNTERS:
        found = [sample for sample in samples if sample.name == name]
        if not found:
            yield (name, None, 0)
        for sample in found:
            yield (name, _label_text(sample.labels.items()), _count(sample.value))
    for sample in samples:
        if sample.name == LATENCY:
            yield (LATENCY, _label_text(sample.labels.items()), f"{sample.value * 1000:.2f} ms")


def _label_text(labels: Iterable[tuple[str, str]]) -> str | None:
    return ", ".join(f"{key}={value}" for key, value in labels) or None


def _count(value: float) -> int | float:
    return int(value) if value.is_integer() else value
