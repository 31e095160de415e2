"""Keeps the broker's grant set in step with the server's decisions, off the deciding thread.

Which devices may use the application plane changes with every attestation
verdict, and each change costs the broker a rewritten ACL file, an fsync and a
reload. A burst of verdicts (a fleet attesting again after a restart) would
make that thousands of reloads, so changes are coalesced: the latest set
always wins, at most one application per *min_interval* (0.5 s), and a change
is in force within about a second. Whoever decides never waits for the file
system and never sees an exception; a failure is logged once per outage and
retried until the set is in force. :meth:`BrokerAccess.apply_now` is the
synchronous way in, for the server's start before devices connect.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from types import TracebackType
from typing import Protocol

from device_runtime.core import protocol
from device_runtime.core.errors import ConfigError, InvalidField, SevenfoldError

__all__ = ["BrokerAccess", "GrantedBroker"]

log = logging.getLogger(__name__)

DEFAULT_MIN_INTERVAL = 0.5
"""Seconds between two applications of the grant set: the reload rate a burst can cause."""
DEFAULT_RETRY_INTERVAL = 1.0
"""Seconds before applying again after a failure."""


class GrantedBroker(Protocol):
    """A broker whose application plane is granted per device id."""

    def apply_grants(self, device_ids: Iterable[str]) -> None:
        """Grant exactly *device_ids*, now; raise a SevenfoldError if that cannot be done."""
        ...


def _why(exc: BaseException) -> str:
    return exc.reason if isinstance(exc, SevenfoldError) else f"{type(exc).__name__}: {exc}"


class BrokerAccess:
    """Publishes the grant set to one broker from a thread of its own.

    :meth:`set_grants` replaces the set to apply and returns at once; each
    call is a new *requested* version, and :attr:`applied_version` says which
    one the broker was last given, so :meth:`wait_applied` can wait for a set
    to be in force. Thread-safe.
    """

    def __init__(
        self,
        broker: GrantedBroker,
        *,
        min_interval: float = DEFAULT_MIN_INTERVAL,
        retry_interval: float = DEFAULT_RETRY_INTERVAL,
    ) -> None:
        if min_interval <= 0 or retry_interval <= 0:
            raise ConfigError(
                f"grant intervals must be positive, got {min_interval} and {retry_interval}"
            )
        self._broker = broker
        self._min_interval = min_interval
        self._retry_interval = retry_interval
        self._changed = threading.Condition()
        # Held while the broker is given a set, so a worker run and apply_now() never
        # interleave and an older set cannot overwrite a newer one.
        self._applying = threading.Lock()
        self._requested: frozenset[str] = frozenset()
        self._requested_version = 0
        self._applied_version = 0
        self._rejected: frozenset[str] = frozenset()
        self._failing = False
        self._closing = False
        self._last_attempt = -float("inf")
        self._thread: threading.Thread | None = None

    @property
    def requested_version(self) -> int:
        """The version of the latest set given to :meth:`set_grants` (0: none yet)."""
        with self._changed:
            return self._requested_version

    @property
    def applied_version(self) -> int:
        """The latest requested version the broker was given (0: none yet)."""
        with self._changed:
            return self._applied_version

    def start(self) -> BrokerAccess:
        """Begin applying changes from a daemon thread; until then they are only recorded."""
        with self._changed:
            if self._thread is not None or self._closing:
                raise ConfigError("the broker access was already started or closed")
            self._thread = threading.Thread(target=self._run, name="broker grants", daemon=True)
        self._thread.start()
        return self

    def set_grants(self, device_ids: Iterable[str]) -> None:
        """Make *device_ids*, and only them, the devices with the application plane.

        Returns at once; the broker gets the set within about a second. An id
        the protocol would refuse cannot be granted: it is left out and
        logged, and the others are granted. Never raises.
        """
        granted, rejected = set(), set()
        try:
            for device_id in device_ids:
                try:
                    granted.add(protocol.check_device_id(device_id))
                except InvalidField:
                    rejected.add(repr(device_id)[:80])
        except Exception as exc:
            log.error("grant set not applied, it could not be read: %s", _why(exc))
            return
        with self._changed:
            if rejected and rejected != self._rejected:
                log.warning(
                    "%d device id(s) cannot be granted and are left out, e.g. %s",
                    len(rejected),
                    min(rejected),
                )
            self._rejected = frozenset(rejected)
            self._requested = frozenset(granted)
            self._requested_version += 1
            self._changed.notify_all()

    def apply_now(self) -> None:
        """Give the broker the latest set from this thread; raise if it cannot be done.

        For the server's start: the set is in force, on a running broker, once
        this returns. Raises the broker's error (:class:`BrokerError`).
        """
        with self._applying:
            with self._changed:
                version, granted = self._requested_version, self._requested
            self._broker.apply_grants(granted)
            self._applied(version)

    def wait_applied(self, version: int | None = None, timeout: float = 5.0) -> bool:
        """True once *version* (default: the latest requested) or a later one was applied."""
        with self._changed:
            wanted = self._requested_version if version is None else version
            return self._changed.wait_for(lambda: self._applied_version >= wanted, timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Stop the thread; a change not applied yet is dropped. Idempotent."""
        with self._changed:
            self._closing = True
            self._changed.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def __enter__(self) -> BrokerAccess:
        return self.start() if self._thread is None else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _applied(self, version: int) -> None:
        with self._changed:
            self._applied_version = max(self._applied_version, version)
            self._changed.notify_all()

    def _run(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(
                    lambda: self._closing or self._requested_version > self._applied_version
                )
                pause = self._retry_interval if self._failing else self._min_interval
                # A burst waits out the interval here; whatever is newest then is applied.
                delay = self._last_attempt + pause - time.monotonic()
                if delay > 0 and self._changed.wait_for(lambda: self._closing, delay):
                    return
                if self._closing:
                    return
            self._attempt()

    def _attempt(self) -> None:
        """Apply the latest set once; failures are logged on the first of an outage only."""
        with self._applying:
            with self._changed:
                version, granted = self._requested_version, self._requested
            if version <= self.applied_version:
                return  # apply_now() got there first
            self._last_attempt = time.monotonic()
            try:
                self._broker.apply_grants(granted)
            except Exception as exc:
                # The thread must outlive anything, or no grant would change any more.
                if not self._failing:
                    log.error(
                        "cannot apply the grant set of %d device(s) to the broker, retrying"
                        " every %gs: %s",
                        len(granted),
                        self._retry_interval,
                        _why(exc),
                    )
                self._failing = True
                return
            if self._failing:
                log.warning("the grant set of %d device(s) is applied again", len(granted))
                self._failing = False
            self._applied(version)
