"""Keeps the managed broker's application-plane grants equal to the verifier's passes.

The verifier decides (``attestation_server.trust_store``: a current pass, not
quarantined); the broker enforces (its ACL file, reloaded on SIGHUP, applies
to open connections too). This joins the two: after every committed batch
that served evidence, before its answers go out, so a device that was just
given a fleet certificate finds its topics open when it reconnects, and one
that was just refused is cut off before it hears why; after an operator's
quarantine or release; and every few seconds, which is also how expired passes
lapse and how passes decided by other gateway processes arrive.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from datetime import UTC, datetime

from attestation_server.trust_store import TrustStore
from device_runtime.core.errors import SevenfoldError
from fleet_platform.broker import MosquittoBroker
from fleet_platform.health import Health

log = logging.getLogger(__name__)

REFRESH_S = 2.0
"""How often the grants are read again whatever happened: the longest a lapsed pass lasts."""
STALE_S = 30.0
"""No successful refresh for this long is unhealthy: the broker's grants may be out of date."""


class BrokerGrants:
    """One broker's grant set, refreshed from the trust store; thread-safe."""

    def __init__(self, *, store: TrustStore, broker: MosquittoBroker) -> None:
        self._store = store
        self._broker = broker
        self._lock = threading.Lock()
        self._applied: list[str] | None = None
        self._passes: list[tuple[str, datetime]] = []
        self._failing = False
        self._refreshed = time.monotonic()
        self._keeper: threading.Thread | None = None

    def refresh(self) -> None:
        """Read who holds a pass now and, if that changed, give the broker exactly them."""
        with self._lock:
            self._passes = self._store.passes(datetime.now(UTC))
            self._apply([device_id for device_id, _ in self._passes])
            self._refreshed = time.monotonic()

    def lapse(self) -> None:
        """Without the database, drop the passes known to have expired: grants fail closed."""
        with self._lock:
            now = datetime.now(UTC)
            self._passes = [(device_id, until) for device_id, until in self._passes if until > now]
            self._apply([device_id for device_id, _ in self._passes])

    def _apply(self, granted: list[str]) -> None:
        if granted != self._applied:
            self._broker.apply_grants(granted)
            self._applied = granted

    def health(self) -> Health:
        """Unhealthy when the keeper thread died or has not refreshed for STALE_S."""
        if self._keeper is not None and not self._keeper.is_alive():
            return Health(False, "the thread keeping the broker's grants is not running")
        age = time.monotonic() - self._refreshed
        if age > STALE_S:
            return Health(False, f"the broker's grants were last refreshed {age:.0f} s ago")
        return Health(True, f"{len(self._passes)} devices granted")

    def after_commit(self, kinds: frozenset[str]) -> None:
        """The gateway's hook: a batch that served evidence (or an enroll, which ends the
        pass of an earlier boot) may have changed a pass. Asked by each batch for itself,
        after its own commit, so no batch can answer before the grants its own decisions
        call for are in force."""
        if "evidence" in kinds or "enroll" in kinds:
            self.refresh()

    def keep(self, stopping: threading.Event) -> None:
        """Refresh every REFRESH_S until *stopping*; a failure is logged once per outage, and
        meanwhile passes that expire are still taken away."""
        self._keeper = threading.current_thread()
        while not stopping.wait(REFRESH_S):
            try:
                self.refresh()
            except Exception as exc:  # the keeper must live on, whatever failed
                reason = exc.explain() if isinstance(exc, SevenfoldError) else repr(exc)
                if not self._failing:
                    log.warning("could not refresh the broker's grants: %s", reason)
                self._failing = True
                with contextlib.suppress(SevenfoldError):
                    self.lapse()
                continue
            if self._failing:
                log.info("the broker's grants are in step again")
            self._failing = False
