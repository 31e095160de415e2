"""A site sensor's link to the fleet server: its inventory and alerts, without losing alerts.

Sites lose their uplink, and servers restart. An inventory is a snapshot the
sensor sends again soon anyway, so a failed send is just reported; an alert is
an event, so one the server cannot take is appended to a spool file on disk
(JSON lines, fsynced) and sent before anything else on the next call that
reaches the server, even after the sensor itself restarted. The server keys
alerts by their stable id and keeps the largest count, so sending a spooled
alert twice after a crash mid-flush updates it rather than duplicating it.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from device_runtime.core.errors import TransportError
from device_runtime.ports.cpython.atomic_file import write_atomic
from fleet_platform import api_tokens
from fleet_platform.server_config import NoServer, RuntimeInfo
from passive_monitor.alerts.model import Alert
from passive_monitor.inventory import Inventory
from passive_monitor.site import check_site

log = logging.getLogger(__name__)

ASSETS_PER_REQUEST = 1000
ALERTS_PER_REQUEST = 500
"""Batch sizes far below the server's caps, so even verbose assets fit one body."""

MAX_BACKOFF_S = 5.0
RETRYABLE = frozenset({408, 429})
"""Client-error statuses that mean "later", not "never"; every 5xx is retried too."""

COMPACT_BYTES = 4 << 20
"""Spool size past which it is rewritten with one line per alert id.

A sensor that keeps re-sending its alerts through a long outage appends the same
ids again and again; compacting keeps the spool as small as the set of distinct
alerts, which the detector already bounds, without dropping any of them.
"""

CONTENT_REFUSED = frozenset({400, 413, 422})
"""Statuses saying the content itself is unacceptable: resending it can never succeed."""


class ForwardingError(TransportError):
    """The fleet server refused a request (4xx); its reason is kept so the operator can act."""

    code = "forward-refused"

    def __init__(self, reason: str, *, status: int) -> None:
        super().__init__(reason)
        self.status = status


class ServerUnreachable(TransportError):
    """The fleet server could not be reached, or kept failing, through every retry."""

    code = "server-unreachable"


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    """What one call achieved: items the server took, spooled alerts flushed, alerts spooled."""

    sent: int
    flushed: int
    spooled: int


class AlertSpool:
    """Alerts waiting for the server, as JSON lines that survive power loss and restarts."""

    def __init__(self, *, path: Path, compact_bytes: int = COMPACT_BYTES) -> None:
        self.path = path
        self._compact_bytes = compact_bytes
        self._lock = threading.RLock()

    def append(self, alerts: Sequence[dict[str, Any]]) -> None:
        """Add *alerts* durably: appended, flushed and fsynced before returning."""
        if not alerts:
            return
        data = "".join(json.dumps(alert, separators=(",", ":")) + "\n" for alert in alerts)
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            created = not self.path.exists()
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                end = os.fstat(fd).st_size
                if end and os.pread(fd, 1, end - 1) != b"\n":
                    # A torn last line must not swallow the first alert appended after it.
                    data = "\n" + data
                remaining = memoryview(data.encode())
                while remaining:
                    remaining = remaining[os.write(fd, remaining) :]
                os.fsync(fd)
                size = os.fstat(fd).st_size
            finally:
                os.close(fd)
            if created:
                self._sync_directory()
            if size > self._compact_bytes:
                self.replace(self.pending())

    def pending(self) -> list[dict[str, Any]]:
        """Spooled alerts, one per id: the copy with the highest count (the newest) wins.

        A line cut short by a power loss during its append cannot be an alert that
        was ever reported as spooled, so it is skipped with a warning.
        """
        with self._lock:
            try:
                lines = self.path.read_text(encoding="utf-8").splitlines()
            except FileNotFoundError:
                return []
        newest: dict[str, dict[str, Any]] = {}
        for number, line in enumerate(lines, start=1):
            try:
                alert = json.loads(line)
                key = str(alert["id"])
                count = int(alert["count"])
            except (ValueError, KeyError, TypeError):
                log.warning("%s:%d: skipping a damaged spool line", self.path, number)
                continue
            known = newest.get(key)
            if known is None or count >= int(known["count"]):
                newest[key] = alert
        return list(newest.values())

    def replace(self, alerts: Sequence[dict[str, Any]]) -> None:
        """Keep only *alerts*, atomically; an empty spool is removed."""
        with self._lock:
            if alerts:
                data = "".join(json.dumps(alert, separators=(",", ":")) + "\n" for alert in alerts)
                write_atomic(self.path, data.encode(), mode=0o600)
            elif self.path.exists():
                self.path.unlink()
                self._sync_directory()

    def _sync_directory(self) -> None:
        fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class FleetForwarder:
    """Sends one site's inventory and alerts to the fleet server with the sensor token."""

    def __init__(
        self,
        *,
        url: str,
        token: str,
        site: str,
        timeout: float = 10.0,
        spool: Path | None = None,
        attempts: int = 4,
        backoff: float = 0.5,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.url = url.rstrip("/")
        self.site = check_site(site)
        self.spool = AlertSpool(path=spool) if spool is not None else None
        self._attempts = attempts
        self._backoff = backoff
        # One call at a time: a flush reads the spool and later rewrites what is left.
        self._sending = threading.Lock()
        self._client = httpx.Client(
            timeout=timeout, headers={"Authorization": f"Bearer {token}"}, follow_redirects=False
        )

    @classmethod
    def for_state_dir(
        cls, state_dir: Path, *, site: str, spool: Path | None = None, timeout: float = 10.0
    ) -> FleetForwarder:
        """Use the sensor token and URL a server on this machine published in *state_dir*.

        The spool defaults to ``spool/<site>.alerts.jsonl`` beside them, so a restarted
        sensor finds the alerts its previous run could not deliver.
        """
        token = api_tokens.read(state_dir, name=api_tokens.SENSOR)
        if token is None:
            raise NoServer(f"no sensor token in {state_dir}; start `sevenfold server` first")
        info = RuntimeInfo.read(state_dir)
        if info is None:
            raise NoServer(f"no running server recorded in {state_dir}")
        path = spool if spool is not None else state_dir / "spool" / f"{site}.alerts.jsonl"
        return cls(url=info.http_url, token=token, site=site, timeout=timeout, spool=path)

    def send_inventory(self, inventory: Inventory) -> Delivery:
        """Flush spooled alerts, then upsert every asset; raises ServerUnreachable on outage."""
        assets = [asset.to_dict() for asset in inventory.assets]
        with self._sending:
            flushed = self._flush()
            sent = 0
            for start in range(0, len(assets), ASSETS_PER_REQUEST):
                chunk = assets[start : start + ASSETS_PER_REQUEST]
                sent += self._send("PUT", "assets", {"assets": chunk})
        return Delivery(sent=sent, flushed=flushed, spooled=0)

    def send_alerts(self, alerts: Iterable[Alert]) -> Delivery:
        """Flush spooled alerts, then send *alerts*; whatever cannot be delivered is spooled.

        Raises ForwardingError when the server refuses; alerts refused for lack of a
        valid token stay spooled, since fixing the token makes them deliverable.
        """
        batch = [alert.to_dict() for alert in alerts]
        with self._sending:
            return self._deliver_alerts(batch)

    def _deliver_alerts(self, batch: list[dict[str, Any]]) -> Delivery:
        try:
            flushed = self._flush()
        except ServerUnreachable as exc:
            return self._spool_after(exc, batch, flushed=0)
        except ForwardingError:
            if self.spool is not None:
                self.spool.append(batch)
            raise
        sent = 0
        for start in range(0, len(batch), ALERTS_PER_REQUEST):
            chunk = batch[start : start + ALERTS_PER_REQUEST]
            try:
                sent += self._send("POST", "alerts", {"alerts": chunk})
            except ServerUnreachable as exc:
                return self._spool_after(exc, batch[start:], flushed=flushed, sent=sent)
            except ForwardingError as exc:
                if exc.status not in CONTENT_REFUSED and self.spool is not None:
                    self.spool.append(batch[start:])
                raise
        return Delivery(sent=sent, flushed=flushed, spooled=0)

    def _spool_after(
        self, exc: ServerUnreachable, alerts: list[dict[str, Any]], *, flushed: int, sent: int = 0
    ) -> Delivery:
        if self.spool is None:
            raise exc
        self.spool.append(alerts)
        log.warning("spooled %d alerts for later: %s", len(alerts), exc.reason)
        return Delivery(sent=sent, flushed=flushed, spooled=len(alerts))

    def _flush(self) -> int:
        """Deliver the spool oldest first, shrinking it after every accepted batch."""
        if self.spool is None:
            return 0
        waiting = self.spool.pending()
        flushed = 0
        while waiting:
            chunk, rest = waiting[:ALERTS_PER_REQUEST], waiting[ALERTS_PER_REQUEST:]
            try:
                flushed += self._send("POST", "alerts", {"alerts": chunk})
            except ForwardingError as exc:
                if exc.status in CONTENT_REFUSED:
                    self.spool.replace(rest)
                    raise ForwardingError(
                        f"dropped {len(chunk)} spooled alerts the server refused: {exc.reason}",
                        status=exc.status,
                    ) from exc
                raise
            self.spool.replace(rest)
            waiting = rest
        return flushed

    def _send(self, method: str, kind: str, payload: dict[str, Any]) -> int:
        """One request with bounded, growing back-off on outages and 5xx; the count accepted."""
        url = f"{self.url}/api/v1/sites/{self.site}/{kind}"
        failure = ""
        for attempt in range(self._attempts):
            if attempt:
                time.sleep(min(self._backoff * 2 ** (attempt - 1), MAX_BACKOFF_S))
            try:
                response = self._client.request(method, url, json=payload)
            except httpx.TransportError as exc:
                failure = f"cannot reach the fleet server at {self.url}: {exc}"
                continue
            status = response.status_code
            if status < 400:
                return _accepted(response)
            reason = f"{method} {kind}: HTTP {status}: {_detail(response)}"
            if status < 500 and status not in RETRYABLE:
                raise ForwardingError(reason, status=status)
            failure = reason
        raise ServerUnreachable(f"{failure} (after {self._attempts} attempts)")

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> FleetForwarder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FleetForwarder(url={self.url!r}, site={self.site!r})"


def _accepted(response: httpx.Response) -> int:
    try:
        return int(response.json()["accepted"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ServerUnreachable(f"the fleet server answered without a count: {exc}") from exc


def _detail(response: httpx.Response) -> str:
    """The server's stated reason, made one line whatever shape FastAPI gave it."""
    try:
        detail = response.json().get("detail", "")
    except (ValueError, AttributeError):
        return response.text[:200]
    if isinstance(detail, list):
        return "; ".join(
            f"{'.'.join(str(part) for part in item.get('loc', []))}: {item.get('msg', '')}"
            if isinstance(item, dict)
            else str(item)
            for item in detail
        )
    return str(detail)
