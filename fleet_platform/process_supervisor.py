"""Keeps a child process running: notices its death, says why, restarts it, reports health.

The server's children are the managed Mosquitto (devices reach the fleet only
through it, so a broker that died unnoticed takes the whole fleet offline while
the server still looks alive) and its extra gateway processes. The supervisor
is one thread per child that polls the process, logs a death at error level
with the tail of the child's own output (the only place it explains itself),
and launches it again the same way (a broker on the same port, since devices
are configured with that port). Restarts back off exponentially so a child
that dies at once does not spin, and the back-off starts over once a restarted
child has stayed up. :meth:`ProcessSupervisor.health` is what the server's
health endpoint reports.
"""

from __future__ import annotations

import ctypes
import logging
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from types import TracebackType
from typing import Protocol

from device_runtime.core.errors import ConfigError, SevenfoldError

__all__ = [
    "ChildProcess",
    "ProcessHealth",
    "ProcessSupervisor",
    "RestartBackoff",
    "Supervised",
    "die_with_parent",
]

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
# Resolved before any fork: a child of a threaded parent must not take the
# dynamic loader's locks, which another thread may have held at fork time.
_prctl = ctypes.CDLL(None, use_errno=True).prctl


def die_with_parent() -> None:
    """Linux, as a ``preexec_fn``: the child gets SIGTERM when the thread that started it ends,
    even by SIGKILL, so no child outlives the server."""
    _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass(frozen=True, slots=True, kw_only=True)
class RestartBackoff:
    """How long to wait before each restart attempt of one outage."""

    first_delay: float = 0.5
    """Seconds before the first attempt after a death."""
    max_delay: float = 30.0
    """The doubling stops here."""
    stable_after: float = 30.0
    """A child up this long when it dies counts as a fresh outage: back to *first_delay*."""

    def __post_init__(self) -> None:
        if not 0 < self.first_delay <= self.max_delay:
            raise ConfigError(
                f"restart back-off needs 0 < first delay ({self.first_delay}) <= max delay"
                f" ({self.max_delay})"
            )
        if self.stable_after <= 0:
            raise ConfigError(f"stable_after must be positive, got {self.stable_after}")

    def delay(self, attempt: int) -> float:
        """Seconds to wait before restart attempt *attempt* (0 is the first) of an outage."""
        # The exponent is capped: past it the delay is max_delay anyway.
        return min(self.max_delay, self.first_delay * 2.0 ** min(attempt, 64))


class Supervised(Protocol):
    """A child process the supervisor can watch and launch again."""

    @property
    def name(self) -> str:
        """What the logs and the health check call it, e.g. ``mosquitto on 127.0.0.1:8883``."""
        ...

    @property
    def running(self) -> bool: ...

    @property
    def pid(self) -> int | None: ...

    @property
    def exit_status(self) -> int | None:
        """How the last process ended (negative: killed by that signal); None while it runs."""
        ...

    @property
    def stopped(self) -> bool:
        """True once stop() was called: it will not be launched again."""
        ...

    def launch_output(self) -> str:
        """The last lines the process wrote since its latest launch."""
        ...

    def relaunch(self) -> None:
        """Start it again after its process ended; raise a SevenfoldError if it cannot."""
        ...

    def stop(self) -> None: ...


class ChildProcess:
    """The state every supervised child keeps: its current process, and whether it was stopped.

    Subclasses launch ``self._process`` (holding ``self._lock``, refusing once
    ``self._stopped``) and say what they are called; the rest is common.
    """

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        # Held while the process is replaced or stopped, so stop() cannot miss a relaunch.
        self._lock = threading.Lock()
        self._stopped = False

    @property
    def running(self) -> bool:
        process = self._process
        return process is not None and process.poll() is None

    @property
    def pid(self) -> int | None:
        """The current (or last) process id."""
        return None if self._process is None else self._process.pid

    @property
    def exit_status(self) -> int | None:
        """How the last process ended (negative: killed by that signal); None while it runs."""
        return None if self._process is None else self._process.poll()

    @property
    def stopped(self) -> bool:
        """True once :meth:`stop` was called: it will not be launched again."""
        return self._stopped

    def stop(self, timeout: float = 10.0) -> None:
        """End the child for good; safe to call more than once and from any thread."""
        with self._lock:
            self._stopped = True
            self._terminate(timeout)

    def _terminate(self, timeout: float) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=timeout)


@dataclass(frozen=True, slots=True, kw_only=True)
class ProcessHealth:
    """A snapshot of one child for a health endpoint: *ok* and one line saying why."""

    ok: bool
    detail: str
    name: str
    pid: int | None
    restarts: int
    """Successful restarts since the supervisor started."""
    failed_attempts: int
    """Restart attempts that failed in the current outage (0 while the child runs)."""
    last_exit_status: int | None
    """How the last dead process ended: its exit status, or minus the signal that killed it."""
    down_since: datetime | None
    """When the current outage was noticed (UTC); None while the child runs."""
    last_error: str | None
    """Why the latest restart attempt failed; None once a restart succeeded."""

    def as_json(self) -> dict[str, object]:
        """The snapshot as JSON-ready values (times in ISO 8601)."""
        return {
            "ok": self.ok,
            "detail": self.detail,
            "name": self.name,
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


class ProcessSupervisor:
    """Watches one started child from a thread and restarts it when it dies.

    Stop the child through :meth:`stop`, which ends the watching first, so no
    restart can happen during or after it.
    """

    def __init__(
        self,
        child: Supervised,
        *,
        backoff: RestartBackoff | None = None,
        poll_interval: float = 0.1,
    ) -> None:
        if poll_interval <= 0:
            raise ConfigError(f"poll interval must be positive, got {poll_interval}")
        self.child = child
        self.backoff = backoff or RestartBackoff()
        self._poll_interval = poll_interval
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._state = threading.Lock()
        self._up = child.running
        self._up_since = time.monotonic()
        self._restarts = 0
        self._failed_attempts = 0
        self._last_exit_status: int | None = None
        self._down_since: datetime | None = None
        self._last_error: str | None = None
        # Attempts so far in the current run of quick deaths; sets the next delay.
        self._attempt = 0

    def start(self) -> ProcessSupervisor:
        """Begin watching; the child must be running (as its own start leaves it).

        The thread also launches the restarted processes, which die with it
        (PR_SET_PDEATHSIG follows the launching thread); it runs until stop().
        """
        if self._thread is not None:
            raise ConfigError(f"the supervisor of {self.child.name} is already started")
        if self._stopping.is_set() or self.child.stopped:
            raise ConfigError(f"{self.child.name} was stopped")
        if not self.child.running:
            raise ConfigError(
                f"{self.child.name} is not running"
                f" ({describe_exit(self.child.exit_status)}); start it before supervising it"
            )
        self._thread = threading.Thread(
            target=self._watch, name=f"supervisor {self.child.name}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop watching, then stop the child; nothing restarts it afterwards. Idempotent."""
        self._stopping.set()
        # Stopping the child also ends a restart attempt that is waiting for its process.
        self.child.stop()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                raise ConfigError(
                    f"the supervisor of {self.child.name} did not end within {timeout:g}s"
                )
        with self._state:
            self._up = False

    def health(self) -> ProcessHealth:
        """Current state; cheap enough to call on every health request."""
        child = self.child
        running = child.running
        with self._state:
            ok = self._up and running and not self._stopping.is_set()
            snapshot = ProcessHealth(
                ok=ok,
                detail="",
                name=child.name,
                pid=child.pid if running else None,
                restarts=self._restarts,
                failed_attempts=self._failed_attempts,
                last_exit_status=self._last_exit_status,
                down_since=self._down_since,
                last_error=self._last_error,
            )
        return replace(snapshot, detail=_detail(snapshot, stopped=self._stopping.is_set()))

    def __enter__(self) -> ProcessSupervisor:
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
            if self.child.running or self._stopping.is_set():
                continue
            try:
                self._recover()
            except Exception:
                # The supervisor must outlive anything unexpected, or nothing would restart
                # the child any more; the next poll tries again.
                log.exception("supervising %s failed", self.child.name)

    def _recover(self) -> None:
        """The child was found dead: report it, then restart it until it is up or stop()."""
        child = self.child
        status = child.exit_status
        noticed = time.monotonic()
        with self._state:
            if self._up and noticed - self._up_since >= self.backoff.stable_after:
                self._attempt = 0
            self._up = False
            self._last_exit_status = status
            self._down_since = datetime.now(UTC)
        log.error(
            "%s (pid %s) %s; restarting in %gs; its last output:\n%s",
            child.name,
            child.pid,
            describe_exit(status),
            self.backoff.delay(self._attempt),
            child.launch_output(),
        )
        while True:
            if self._stopping.wait(self.backoff.delay(self._attempt)):
                return
            self._attempt += 1
            try:
                child.relaunch()
            except SevenfoldError as exc:
                if self._stopping.is_set():
                    return
                with self._state:
                    self._failed_attempts += 1
                    self._last_error = exc.reason
                log.error(
                    "restarting %s failed (attempt %d): %s; next attempt in %gs",
                    child.name,
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
            "%s restarted (pid %s) after %.2fs down; restart %d",
            child.name,
            child.pid,
            outage,
            self._restarts,
        )


def _detail(health: ProcessHealth, *, stopped: bool) -> str:
    """The snapshot's one-line explanation, for the health endpoint and an operator's eyes."""
    where = health.name
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
