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

import logging
import threading
from datetime import UTC, datetime

from attestation_server.trust_store import TrustStore
from device_runtime.core.errors import SevenfoldError
from fleet_platform.broker import MosquittoBroker

log = logging.getLogger(__name__)

REFRESH_S = 2.0
"""How often the grants are read again whatever happened: the longest a lapsed pass lasts."""


class BrokerGrants:
    """One broker's grant set, refreshed from the trust store; thread-safe."""

    def __init__(self, *, store: TrustStore, broker: MosquittoBroker) -> None:
        self._store = store
        self._broker = broker
        self._lock = threading.Lock()
        self._applied: list[str] | None = None
        self._failing = False

    def refresh(self) -> None:
        """Read who holds a pass now and, if that changed, give the broker exactly them."""
        with self._lock:
            granted = self._store.granted(datetime.now(UTC))
            if granted != self._applied:
                self._broker.apply_grants(granted)
                self._applied = granted

    def after_commit(self, kinds: frozenset[str]) -> None:
        """The gateway's hook: a batch that served evidence may have changed a pass. Asked
        by each batch for itself, after its own commit, so no batch can answer before the
        grants its own decisions call for are in force."""
        if "evidence" in kinds:
            self.refresh()

    def keep(self, stopping: threading.Event) -> None:
        """Refresh every REFRESH_S until *stopping*; a failure is logged once per outage."""
        while not stopping.wait(REFRESH_S):
            try:
                self.refresh()
            except SevenfoldError as exc:
                if not self._failing:
                    log.warning("could not refresh the broker's grants: %s", exc.explain())
                self._failing = True
                continue
            if self._failing:
                log.info("the broker's grants are in step again")
            self._failing = False
