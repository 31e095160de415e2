"""The operator REST API as seen from a command line on the same machine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from device_runtime.core.errors import TransportError
from fleet_platform import api_tokens
from fleet_platform.server_config import NoServer, RuntimeInfo


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
        try:
            response = httpx.get(
                f"{self.url}{path}", headers=self._headers, params=params, timeout=self._timeout
            )
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise TransportError(f"cannot reach the fleet server at {self.url}: {exc}") from exc
        if response.status_code != 200:
            detail = response.json().get("detail", response.text) if response.content else ""
            raise TransportError(f"{path}: HTTP {response.status_code}: {detail}")
        return response.json()
