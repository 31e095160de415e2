"""The application a simulated board boots: the payload of its verified firmware image.

The first stage hands over the payload only once the image's signature held, so
nothing here checks where the bytes came from; it checks what they are and
keeps them away from the board. The payload is one Python module in UTF-8
(docs/firmware.md), run in a compartment of its own: a child process
(``device_runtime/application_compartment.py``) that is given the payload and
nothing else, so the application cannot reach the board's root of trust, its
files or its memory, and two boards (or two releases) never share code. The
module offers three entry points, the board's whole interface to it:

* ``boot(device_id) -> state``: bring the sensors up; raising is a crash on boot;
* ``health_check(state) -> None | reason``: the self-test that decides whether a
  new release is kept;
* ``sample(state, uptime_s) -> {name: int}``: the readings now.

The state stays in the compartment. Everything the compartment says is the
application's, so it is checked as hostile: frames are bounded, each answer
must arrive within a timeout, and its shape is checked. Whatever goes wrong (a
crash, a hang, an answer of the wrong shape, a process that dies or talks
nonsense) is an :class:`ApplicationError` with the release named, never an
exception or a hang escaping into the board; once the application hung or
broke the protocol its process is killed and every later call says so.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import NoReturn

from device_runtime import application_compartment as compartment
from device_runtime.core import cbor
from device_runtime.core.errors import DecodeError, SevenfoldError, TooLarge

MAX_PAYLOAD = 64 * 1024
"""Bytes of application the simulated board's slot takes."""
MAX_READINGS = 16
MAX_NAME = 32
READING_LIMIT = 1 << 31
"""Readings are signed 32-bit integers, as a sensor's register holds them."""
CALL_TIMEOUT_S = 5.0
"""How long loading, boot(), health_check() or sample() may take before the application is
called hung: a few readings take microseconds."""
START_TIMEOUT_S = 20.0
"""How long the compartment's interpreter may take to start and confine itself (it is the
board's code, not the application's: only a machine starting many boards at once is slow)."""
EXIT_WAIT_S = 1.0
"""How long a compartment that closed its pipe gets to exit before it is killed."""
KINDS = ("ok", "crash", "refused", "answered")
COMMAND = (sys.executable, "-S", "-P", "-m", "device_runtime.application_compartment")
"""No site packages and no working directory on its path: the compartment imports only
the standard library and this code."""
CODE_ROOT = str(Path(__file__).resolve().parents[1])
"""Where the compartment imports ``device_runtime`` from: this very copy, not an installed one."""


class ApplicationError(SevenfoldError):
    """The application a verified image carries failed: its payload is no application, it
    crashed or hung, or it answered the board nonsense. A local failure, never sent over the
    wire (so not in the core's tree, which a device carries)."""

    code = "application"


class _Broken(Exception):
    """The compartment hung, died or broke the protocol: (what happened, details)."""


def _line(text: str) -> str:
    """Text from the compartment as one printable line of at most MAX_REASON characters."""
    return "".join(c if c.isprintable() else " " for c in text[: compartment.MAX_REASON])


def _wrong_readings(readings: object) -> str | None:
    """What is wrong with *readings*, or None: at most MAX_READINGS named 32-bit integers."""
    if not isinstance(readings, dict):
        return type(readings).__name__
    if len(readings) > MAX_READINGS:
        return f"{len(readings)} readings"
    for name, value in readings.items():
        named = isinstance(name, str) and 0 < len(name) <= MAX_NAME and name.isidentifier()
        number = isinstance(value, int) and not isinstance(value, bool)
        if not named or not number or not -READING_LIMIT <= value < READING_LIMIT:
            return f"{name!r:.40}: {value!r:.40}"
    return None


class Application:
    """One release's application, loaded into its compartment and not yet booted; close it
    (or use it as a context manager) when the board is done with it.

    The thread that creates it must outlive it: the compartment's parent-death signal fires
    when that thread ends (``run_board`` opens and closes it in one call).
    """

    def __init__(self, payload: bytes, *, label: str, timeout_s: float = CALL_TIMEOUT_S) -> None:
        """Start a compartment and load *payload* in it; *label* names it in every reason."""
        self.label = label
        self._timeout_s = timeout_s
        self._stopped: str | None = None
        if len(payload) > MAX_PAYLOAD:
            raise ApplicationError(
                f"{label}: the payload is {len(payload)} bytes, over the slot's {MAX_PAYLOAD}"
            )
        # Its own session: a signal the application sends its process group misses the board.
        self._process = subprocess.Popen(
            COMMAND, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            cwd="/", env={"PYTHONPATH": CODE_ROOT}, start_new_session=True,
        )  # fmt: skip
        assert self._process.stdin is not None and self._process.stdout is not None
        self._to, self._from = self._process.stdin.fileno(), self._process.stdout.fileno()
        os.set_blocking(self._to, False)
        try:
            self._done(None, "as its compartment started", START_TIMEOUT_S)
            self._done(["load", payload], "loading")
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Application:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Kill the compartment; the application is gone with it."""
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        for pipe in (self._process.stdin, self._process.stdout):
            if pipe is not None:
                pipe.close()

    def boot(self, device_id: str) -> None:
        """The application's boot; ApplicationError if it crashed."""
        self._done(["boot", device_id], "on boot")

    def health_check(self) -> str | None:
        """None when the application calls itself healthy, else its reason (one line)."""
        kind, reason = self._ask(["health_check", None], "in its health check")
        if kind == "ok" and reason is None:
            return None
        if kind == "ok" and isinstance(reason, str) and reason:
            return _line(reason)
        what = _line(str(reason)) if kind == "answered" else type(reason).__name__
        return f"the health check answered {what}, not None or a reason"

    def sample(self, uptime_s: int) -> dict[str, int]:
        """The readings at *uptime_s*, checked: a few named integers."""
        kind, readings = self._ask(["sample", uptime_s], "sampling")
        wrong = _line(str(readings)) if kind == "answered" else _wrong_readings(readings)
        if wrong is not None:
            raise ApplicationError(
                f"{self.label}: sample() answered {wrong}, not a map of at most"
                f" {MAX_READINGS} named 32-bit integers"
            )
        assert isinstance(readings, dict)
        return dict(readings)

    def _done(
        self, request: list[object] | None, what: str, timeout_s: float | None = None
    ) -> None:
        """Ask *request* of the compartment, whose answer must be the plain ``ok`` (starting,
        loading, boot())."""
        kind, value = self._ask(request, what, timeout_s)
        if (kind, value) != ("ok", None):
            self._stop(f"{self.label} broke the protocol {what}: answered {kind} {value!r:.40}")

    def _ask(
        self, request: list[object] | None, what: str, timeout_s: float | None = None
    ) -> tuple[str, object]:
        """The compartment's answer to *request* (None: the one it gives when it is ready) as
        (kind, value); ApplicationError when the application crashed, refused to load, hung,
        died or broke the protocol."""
        if self._stopped is not None:
            raise ApplicationError(f"{self.label} was stopped: {self._stopped}")
        timeout = self._timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout
        try:
            if request is not None:
                self._write(compartment.frame(request), deadline)
            size = int.from_bytes(self._read(compartment.FRAME_HEADER, deadline), "big")
            if size > compartment.MAX_ANSWER:
                raise _Broken("broke the protocol", f"a {size}-byte answer")
            answer = cbor.loads(self._read(size, deadline), max_depth=2, max_items=64)
        except _Broken as exc:
            happened, details = exc.args
            if happened == "hung":
                details = f"no answer in {timeout:g} s"
            self._stop(f"{self.label} {happened} {what}: {details}")
        except (DecodeError, TooLarge) as exc:
            self._stop(f"{self.label} broke the protocol {what}: {exc.reason}")
        if not isinstance(answer, dict) or len(answer) != 1:
            self._stop(f"{self.label} broke the protocol {what}: no one-entry map")
        ((kind, value),) = answer.items()
        if kind not in KINDS or (kind != "ok" and not isinstance(value, str)):
            self._stop(f"{self.label} broke the protocol {what}: an answer {kind!r:.20}")
        if kind == "crash":
            raise ApplicationError(f"{self.label} crashed {what}: {_line(str(value))}")
        if kind == "refused":
            raise ApplicationError(f"{self.label}: {_line(str(value))}")
        return kind, value

    def _stop(self, reason: str) -> NoReturn:
        """Kill the compartment for *reason*, which every later call repeats; raises it."""
        self._stopped = reason
        self.close()
        raise ApplicationError(reason)

    def _write(self, data: bytes, deadline: float) -> None:
        view = memoryview(data)
        while view:
            if not select.select([], [self._to], [], max(0.0, deadline - time.monotonic()))[1]:
                raise _Broken("hung", "")
            try:
                view = view[os.write(self._to, view) :]
            except BrokenPipeError:
                raise _Broken("crashed", self._ended()) from None

    def _read(self, n: int, deadline: float) -> bytes:
        data = b""
        while len(data) < n:
            if not select.select([self._from], [], [], max(0.0, deadline - time.monotonic()))[0]:
                raise _Broken("hung", "")
            part = os.read(self._from, n - len(data))
            if not part:
                raise _Broken("crashed", self._ended())
            data += part
        return data

    def _ended(self) -> str:
        """How the compartment's process ended, now that its pipe closed."""
        try:
            status = self._process.wait(EXIT_WAIT_S)
        except subprocess.TimeoutExpired:
            return "it closed its pipe"
        if status < 0:
            return f"its process was killed by signal {-status}"
        return f"its process exited with status {status}"
