"""Keeps the online metadata from expiring: the server re-signs it before it runs out.

A device refuses expired metadata (that is how TUF stops a freeze attack:
an attacker replaying yesterday's repository forever), so a repository
nobody publishes to would lock every device out after a day, when the
timestamp expires. The server therefore re-signs each online role once half
of its validity has passed: the timestamp (1 day) every twelve hours, the
snapshot (7 days), targets and the model roles and bins (365 days) likewise.
Root is signed offline and cannot be renewed here; the keeper's health check
turns unhealthy weeks before it expires, saying how to renew it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from tuf.api.metadata import Signed

from device_runtime.core.errors import SevenfoldError
from fleet_platform.health import Health
from update_service.release_store import ReleaseStore
from update_service.tuf_repository import TufRepository, expiry_period

log = logging.getLogger(__name__)

CHECK_S = 600.0
"""How often expiries are looked at: a small fraction of the timestamp's half-day margin."""
ROOT_WARNING = timedelta(days=30)


def due(signed: Signed, role: str, now: datetime) -> bool:
    """True once less than half of *role*'s validity is left."""
    return signed.expires - now < expiry_period(role) / 2


def refresh(store: ReleaseStore, now: datetime) -> list[str]:
    """Re-sign every online role that is due, or signed by the previous root's key; the roles.

    A role whose signatures verify under neither the current root (or its
    delegator) nor, for a top-level role, the previous root was not written by
    the service: re-signing it would launder whatever was changed in it, so
    the whole refresh is refused with the reason (loading it raises, see
    :meth:`TufRepository._load`), and the health check reports it. One that
    verifies only under the previous root is what a root import that rotated
    its key and died before re-signing leaves; that one is re-signed. Snapshot
    and timestamp are re-signed by ``do_snapshot``/``do_timestamp``, which also
    do so when their signatures no longer verify under the root. Nothing
    happens without a repository.
    """
    if not store.reader().exists():
        return []
    with store.writer(now=now) as repo:
        resigned = [
            role
            for role in _targets_roles(repo)
            if due(repo.targets(role), role, now) or role in repo.signed_by_previous_root
        ]
        for role in resigned:
            with repo.edit_targets(role):
                pass
        snapshot, _ = repo.do_snapshot(force=due(repo.snapshot(), "snapshot", now))
        timestamp, _ = repo.do_timestamp(force=due(repo.timestamp(), "timestamp", now))
        return resigned + ["snapshot"] * snapshot + ["timestamp"] * timestamp


def _targets_roles(repo: TufRepository) -> list[str]:
    roles = ["targets"]
    for model in repo.model_roles():
        roles.extend(repo.leaves(model))
    return roles


class MetadataKeeper:
    """The server's periodic task around :func:`refresh`, with a health check."""

    def __init__(
        self, store: ReleaseStore, *, now: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self.store = store
        self._now = now
        self._failure: str | None = None

    def refresh(self) -> list[str]:
        try:
            resigned = refresh(self.store, self._now())
        except Exception as exc:  # the keeper must live on, whatever failed
            reason = exc.explain() if isinstance(exc, SevenfoldError) else repr(exc)
            if self._failure is None:
                log.warning("could not re-sign the update metadata: %s", reason)
            self._failure = reason
            return []
        if resigned:
            log.info("re-signed update metadata: %s", ", ".join(resigned))
        self._failure = None
        return resigned

    def keep(self, stopping: threading.Event) -> None:
        """Refresh now and every CHECK_S until *stopping* is set."""
        while True:
            self.refresh()
            if stopping.wait(CHECK_S):
                return

    def health(self) -> Health:
        if self._failure is not None:
            return Health(False, f"re-signing the update metadata fails: {self._failure}")
        repo = self.store.reader()
        if not repo.exists():
            return Health(True, "no update repository yet")
        try:
            root = repo.root()
            timestamp = repo.timestamp().version
        except SevenfoldError as exc:
            return Health(False, f"the update repository does not verify: {exc.explain()}")
        left = root.expires - self._now()
        if left < ROOT_WARNING:
            return Health(
                False,
                f"root v{root.version} expires {root.expires.isoformat()}: renew it offline"
                " (`sevenfold keys rotate root`, sign, `sevenfold keys import-root`)",
            )
        return Health(True, f"root v{root.version}, timestamp v{timestamp}")
