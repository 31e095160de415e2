"""The operator REST API as seen from a command line on the same machine."""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from device_runtime.core.errors import TransportError
from fleet_platform import api_tokens
from fleet_platform.server_config import RUNTIME_FILE, NoServer, RuntimeInfo

HEALTHY = "ok"
UNHEALTHY = "unhealthy"
_HEALTH_ANSWERS = {200: HEALTHY, 503: UNHEALTHY}
"""The HTTP status ``/healthz`` answers with for each overall status."""


class FleetClient:
    def __init__(self, *, url: str, token: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"}
        self._timeout = timeout

    @classmethod
    def for_state_dir(cls, state_dir: Path, *, url: str | None = None) -> FleetClient:
        """Find the local server's URL and operator token in its state directory."""
        token = api_tokens.read(state_dir)
        if token is None:
            raise NoServer(f"no operator token in {state_dir}; start `sevenfold server` first")
        if url is None:
            info = RuntimeInfo.read(state_dir)
            if info is None:
                raise NoServer(f"no running server recorded in {state_dir}")
            url = info.http_url
        return cls(url=url, token=token)

    def get(self, path: str, **params: Any) -> Any:
        response = self._get(path, params=params)
        if response.status_code != 200:
            raise _http_error(path, response)
        return response.json()

    def send(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """A POST, PUT or DELETE; the answer's JSON (None for an empty answer)."""
        try:
            response = httpx.request(
                method, f"{self.url}{path}", headers=self._headers, json=body,
                timeout=self._timeout,
            )  # fmt: skip
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise TransportError(f"cannot reach the fleet server at {self.url}: {exc}") from exc
        if response.status_code >= 300:
            raise _http_error(path, response)
        return response.json() if response.content else None

    def metrics(self) -> list[Sample]:
        """The server's ``/metrics`` counters, parsed."""
        response = self._get("/metrics")
        if response.status_code != 200:
            raise _http_error("/metrics", response)
        return parse_prometheus(response.text)

    def _get(self, path: str, *, params: dict[str, Any] | None = None) -> httpx.Response:
        return _fetch(f"{self.url}{path}", self.url, self._timeout, self._headers, params)


# -- health --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Check:
    """One part of the server as ``/healthz`` reports it."""

    ok: bool
    detail: str


@dataclass(frozen=True, slots=True)
class HealthReport:
    """A server's answer to ``/healthz``: the overall verdict and every check behind it."""

    url: str
    http_status: int
    status: str
    checks: dict[str, Check]

    @property
    def healthy(self) -> bool:
        """Healthy only when the status code and the body both say so, and every check passes.

        A load balancer goes by the status code and a person by the body; a
        server where the two disagree is not one to call healthy.
        """
        return (
            self.http_status == 200
            and self.status == HEALTHY
            and all(check.ok for check in self.checks.values())
        )

    @property
    def failing(self) -> list[str]:
        """Names of the checks that do not pass, in the server's order."""
        return [name for name, check in self.checks.items() if not check.ok]

    def as_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "http_status": self.http_status,
            "status": self.status,
            "checks": {
                name: {"ok": check.ok, "detail": check.detail}
                for name, check in self.checks.items()
            },
        }


def fetch_health(url: str, *, timeout: float = 10.0) -> HealthReport:
    """Ask *url*'s unauthenticated ``/healthz``; 503 is an answer, not an error.

    Raises :class:`TransportError` when the server cannot be reached or what
    answers is not a Sevenfold health endpoint (another program on the port).
    """
    base = url.rstrip("/")
    response = _fetch(f"{base}/healthz", base, timeout, {}, None)
    if response.status_code not in _HEALTH_ANSWERS:
        raise _http_error("/healthz", response)
    try:
        body = response.json()
    except ValueError:
        body = None
    return _health_report(base, response.status_code, body)


def _health_report(url: str, http_status: int, body: object) -> HealthReport:
    malformed = TransportError(f"{url}/healthz did not answer as a Sevenfold server does")
    if not isinstance(body, dict):
        raise malformed
    status, raw_checks = body.get("status"), body.get("checks")
    if not isinstance(status, str) or status not in _HEALTH_ANSWERS.values():
        raise malformed
    if not isinstance(raw_checks, dict):
        raise malformed
    checks: dict[str, Check] = {}
    for name, check in raw_checks.items():
        if not (
            isinstance(name, str)
            and isinstance(check, dict)
            and isinstance(check.get("ok"), bool)
            and isinstance(check.get("detail"), str)
        ):
            raise malformed
        checks[name] = Check(ok=check["ok"], detail=check["detail"])
    return HealthReport(url=url, http_status=http_status, status=status, checks=checks)


# -- the running server's record -------------------------------------------------------


def recorded_server(state_dir: Path) -> RuntimeInfo:
    """The server recorded in *state_dir*, which must still be running.

    The record stays behind when a server stops or is killed, and its port may
    since belong to another program, even another Sevenfold server with another
    state directory; asking that one would report somebody else's health. So a
    record whose process has ended is no server at all.
    """
    info = RuntimeInfo.read(state_dir)
    if info is None:
        raise NoServer(f"no server recorded in {state_dir}; start `sevenfold server` first")
    if not process_alive(info.pid):
        raise NoServer(
            f"the server recorded in {state_dir / RUNTIME_FILE} (pid {info.pid}) is not running"
        )
    return info


def process_alive(pid: int) -> bool:
    """True while a process *pid* exists on this machine (it may belong to another user)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- metrics -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sample:
    """One line of Prometheus' text format: a metric, its labels, its value."""

    name: str
    labels: dict[str, str]
    value: float

    def as_json(self) -> dict[str, Any]:
        value: float | int | str = self.value
        if math.isfinite(self.value) and self.value.is_integer():
            value = int(self.value)
        elif not math.isfinite(self.value):
            value = str(self.value)  # JSON has no NaN or infinity
        return {"name": self.name, "labels": self.labels, "value": value}


_SAMPLE = re.compile(
    r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})?\s+(?P<value>\S+)(?:\s+-?\d+)?$"
)
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(?:,|$)')
_UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


def parse_prometheus(text: str) -> list[Sample]:
    """The samples of a Prometheus text exposition, comments and ``# TYPE`` lines aside.

    A line this parser cannot read is skipped rather than failing the whole
    answer: a newer server may expose more than this client knows, and the
    counters it does know are still worth showing.
    """
    samples: list[Sample] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if match is None:
            continue
        labels = _labels(match.group("labels") or "")
        try:
            value = float(match.group("value"))
        except ValueError:
            continue
        if labels is not None:
            samples.append(Sample(name=match.group("name"), labels=labels, value=value))
    return samples


def _labels(text: str) -> dict[str, str] | None:
    labels: dict[str, str] = {}
    position = 0
    while position < len(text):
        match = _LABEL.match(text, position)
        if match is None:
            return None if text[position:].strip() else labels
        labels[match.group(1)] = re.sub(
            r"\\[\\\"n]", lambda m: _UNESCAPE[m.group(0)], match.group(2)
        )
        position = match.end()
    return labels


# -- transport ----------------------------------------------------------------------------


def _fetch(
    target: str,
    base: str,
    timeout: float,
    headers: dict[str, str],
    params: dict[str, Any] | None,
) -> httpx.Response:
    try:
        return httpx.get(target, headers=headers, params=params, timeout=timeout)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise TransportError(f"cannot reach the fleet server at {base}: {exc}") from exc


def _http_error(path: str, response: httpx.Response) -> TransportError:
    detail: object = response.text
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and "detail" in body:
        detail = body["detail"]
    return TransportError(f"{path}: HTTP {response.status_code}: {detail}")
