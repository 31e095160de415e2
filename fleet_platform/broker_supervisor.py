"""Keeps the managed Mosquitto running: notices its death, says why, restarts it, reports health.

Devices reach the fleet only through the broker, so a broker that died unnoticed
takes the whole fleet offline while the server still looks alive. The
supervisor is one thread that polls the process, logs a death at error level
with the tail of mosquitto's own output (the only place it explains itself),
and launches it again on the same port, since devices are configured with that
port. Restarts back off exponentially so a broker that dies at once does not
spin, and the back-off starts over once a restarted broker has stayed up.
:meth:`BrokerSupervisor.health` is what the server's health endpoint reports.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from types import TracebackType

from fleet_platform.broker import MosquittoBroker
from fleet_platform.broker_config import BrokerError

__all__ = ["BrokerHealth", "BrokerSupervisor", "RestartBackoff"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class RestartBackoff:
    """How long to wait before each restart attempt of one outage."""

    first_delay: float = 0.5
    """Seconds before the first attempt after a death."""
    max_delay: float = 30.0
    """The doubling stops here."""
    stable_after: float = 30.0
    """A broker up this long when it dies counts as a fresh outage: back to *first_delay*."""

    def __post_init__(self) -> None:
        if not 0 < self.first_delay <= self.max_delay:
            raise BrokerError(
                f"restart back-off needs 0 < first delay ({self.first_delay}) <= max delay"
                f" ({self.max_delay})"
            )
        if self.stable_after <= 0:
            raise BrokerError(f"stable_after must be positive, got {self.stable_after}")

    def delay(self, attempt: int) -> float:
        """Seconds to wait before restart attempt *attempt* (0 is the first) of an outage."""
        # The exponent is capped: past it the delay is max_delay anyway.
        return min(self.max_delay, self.first_delay * 2.0 ** min(attempt, 64))


@dataclass(frozen=True, slots=True, kw_only=True)
class BrokerHealth:
    """A snapshot of the managed broker for a health endpoint: *ok* and one line saying why."""

    ok: bool
    detail: str
    host: str
    port: int
    pid: int | None
    restarts: int
    """Successful restarts since the supervisor started."""
    failed_attempts: int
    """Restart attempts that failed in the current outage (0 while the broker runs)."""
    last_exit_status: int | None
    """How the last dead process ended: its exit status, or minus the signal that killed it."""
    down_since: datetime | None
    """When the current outage was noticed (UTC); None while the broker runs."""
    last_error: str | None
    """Why the latest restart attempt failed; None once a restart succeeded."""

    def as_json(self) -> dict[str, object]:
        """The snapshot as JSON-ready values (times in ISO 8601)."""
        return {
            "ok": self.ok,
            "detail": self.detail,
            "host": self.host,
            "port": self.port,
            "pid": self.pid,
            "restarts": self.restarts,
            "failed_attempts": self.failed_attempts,
            "last_exit_status": self.last_exit_status,
            "down_since": None if self.down_since is None else self.down_since.isoformat(),
            "last_error": self.last_error,
        }


def describe_exit(status: int | None) -> str:
    """Popen's return code in words: a negative one is the signal that ended the process."""
    if status is None:
        return "still running"
    if status < 0:
        try:
            name = signal.Signals(-status).name
        except ValueError:
            name = f"signal {-status}"
        return f"killed by {name}"
    return f"exited with status {status}"


class BrokerSupervisor:
    """Watches one started :class:`MosquittoBroker` from a thread and restarts it when it dies.

    Stop the broker through :meth:`stop`, which ends the watching first, so no
    restart can happen during or after it.
    """

    def __init__(
        self,
        broker: MosquittoBroker,
        *,
        backoff: RestartBackoff | None = None,
        poll_interval: float = 0.1,
    ) -> None:
        if poll_interval <= 0:
            raise BrokerError(f"poll interval must be positive, got {poll_interval}")
        self.broker = broker
        self.backoff = backoff or RestartBackoff()
        self._poll_interval = poll_interval
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._state = threading.Lock()
        self._up = broker.running
        self._up_since = time.monotonic()
        self._restarts = 0
        self._failed_attempts = 0
        self._last_exit_status: int | None = None
        self._down_since: datetime | None = None
        self._last_error: str | None = None
        # Attempts so far in the current run of quick deaths; sets the next delay.
        self._attempt = 0

    def start(self) -> BrokerSupervisor:
        """Begin watching; the broker must be running (as :meth:`MosquittoBroker.start` leaves it).

        The thread also launches the restarted processes, which die with it
        (PR_SET_PDEATHSIG follows the launching thread); it runs until stop().
        """
        if self._thread is not None:
            raise BrokerError("the broker supervisor is already started")
        if self._stopping.is_set() or self.broker.stopped:
            raise BrokerError(f"the broker on port {self.broker.port} was stopped")
        if not self.broker.running:
            raise BrokerError(
                f"mosquitto on port {self.broker.port} is not running"
                f" ({describe_exit(self.broker.exit_status)}); start it before supervising it"
            )
        self._thread = threading.Thread(target=self._watch, name="broker-supervisor", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop watching, then stop the broker; nothing restarts it afterwards. Idempotent."""
        self._stopping.set()
        # Stopping the broker also ends a restart attempt that is waiting for its process.
        self.broker.stop()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                raise BrokerError(f"the broker supervisor did not end within {timeout:g}s")
        with self._state:
            self._up = False

    def health(self) -> BrokerHealth:
        """Current state; cheap enough to call on every health request."""
        broker = self.broker
        running = broker.running
        with self._state:
            ok = self._up and running and not self._stopping.is_set()
            snapshot = BrokerHealth(
                ok=ok,
                detail="",
                host=broker.host,
                port=broker.port,
                pid=broker.pid if running else None,
                restarts=self._restarts,
                failed_attempts=self._failed_attempts,
                last_exit_status=self._last_exit_status,
                down_since=self._down_since,
                last_error=self._last_error,
            )
        return replace(snapshot, detail=_detail(snapshot, stopped=self._stopping.is_set()))

    def __enter__(self) -> BrokerSupervisor:
        return self.start() if self._thread is None else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _watch(self) -> None:
        while not self._stopping.wait(self._poll_interval):
            # Checked in this order: stop() sets the event before it ends the process.
            if self.broker.running or self._stopping.is_set():
                continue
            try:
                self._recover()
            except Exception:
                # The supervisor must outlive anything unexpected, or nothing would restart
                # the broker any more; the next poll tries again.
                log.exception("supervising mosquitto on port %d failed", self.broker.port)

    def _recover(self) -> None:
        """The broker was found dead: report it, then restart it until it is up or stop()."""
        broker = self.broker
        status = broker.exit_status
        noticed = time.monotonic()
        with self._state:
            if self._up and noticed - self._up_since >= self.backoff.stable_after:
                self._attempt = 0
            self._up = False
            self._last_exit_status = status
            self._down_since = datetime.now(UTC)
        log.error(
            "mosquitto on port %d (pid %s) %s; restarting in %gs; its last output:\n%s",
            broker.port,
            broker.pid,
            describe_exit(status),
            self.backoff.delay(self._attempt),
            broker.launch_output(),
        )
        while True:
            if self._stopping.wait(self.backoff.delay(self._attempt)):
                return
            self._attempt += 1
            try:
                broker.relaunch()
            except BrokerError as exc:
                if self._stopping.is_set():
                    return
                with self._state:
                    self._failed_attempts += 1
                    self._last_error = exc.reason
                log.error(
                    "restarting mosquitto on port %d failed (attempt %d): %s; next attempt in %gs",
                    broker.port,
                    self._attempt,
                    exc.reason,
                    self.backoff.delay(self._attempt),
                )
                continue
            break
        with self._state:
            self._up = True
            self._up_since = time.monotonic()
            self._restarts += 1
            self._failed_attempts = 0
            self._last_error = None
            down_since = self._down_since
            self._down_since = None
        outage = (datetime.now(UTC) - down_since).total_seconds() if down_since else 0.0
        log.warning(
            "mosquitto restarted on port %d (pid %s) after %.2fs down; restart %d",
            broker.port,
            broker.pid,
            outage,
            self._restarts,
        )


def _detail(health: BrokerHealth, *, stopped: bool) -> str:
    """The snapshot's one-line explanation, for the health endpoint and an operator's eyes."""
    where = f"mosquitto on {health.host}:{health.port}"
    if stopped:
        return f"{where} is stopped"
    if health.ok:
        plural = "" if health.restarts == 1 else "s"
        detail = f"{where} is running (pid {health.pid}), restarted {health.restarts} time{plural}"
        if health.last_exit_status is not None:
            detail += f", last {describe_exit(health.last_exit_status)}"
        return detail
    if health.down_since is None:
        return f"{where} is not running"
    since = health.down_since.isoformat(timespec="seconds")
    detail = f"{where} is down since {since} ({describe_exit(health.last_exit_status)})"
    if health.failed_attempts and health.last_error:
        first_line = health.last_error.splitlines()[0]
        detail += f"; {health.failed_attempts} restart attempt(s) failed, last: {first_line}"
    return detail
