"""The application a simulated board boots: the payload of its verified firmware image.

The first stage hands over the payload only once the image's signature held, so
nothing here checks where the bytes came from; it checks what they are. The
payload is one Python module in UTF-8 (docs/firmware.md): it is compiled and
run as a module of its own, never imported by name, so two boards in one
process (a test's) or two releases one after the other cannot see each other's
code. The module offers three entry points, the board's whole interface to it:

* ``boot(device_id) -> state``: bring the sensors up; raising is a crash on boot;
* ``health_check(state) -> None | reason``: the self-test that decides whether a
  new release is kept;
* ``sample(state, uptime_s) -> {name: int}``: the readings now.

Whatever the application does wrong (a crash, an answer of the wrong shape)
is an :class:`ApplicationError` with the release named, never an exception of
its own escaping into the board.
"""

from __future__ import annotations

import traceback
import types
from collections.abc import Callable
from typing import Any

from device_runtime.core.errors import SevenfoldError

MAX_PAYLOAD = 64 * 1024
"""Bytes of application the simulated board's slot takes."""
ENTRY_POINTS = ("boot", "health_check", "sample")
MAX_READINGS = 16
MAX_NAME = 32
MAX_REASON = 256
READING_LIMIT = 1 << 31
"""Readings are signed 32-bit integers, as a sensor's register holds them."""


class ApplicationError(SevenfoldError):
    """The application a verified image carries failed: its payload is no application, it
    crashed, or it answered the board nonsense. A local failure, never sent over the wire
    (so not in the core's tree, which a device carries)."""

    code = "application"


def _where(exc: BaseException, filename: str) -> str:
    """The application's own line the exception came from, for the boot failure's reason."""
    lines = [f.lineno for f in traceback.extract_tb(exc.__traceback__) if f.filename == filename]
    return f" (line {lines[-1]})" if lines else ""


class Application:
    """One release's application, loaded from its payload and not yet booted."""

    def __init__(self, payload: bytes, *, label: str) -> None:
        """Compile *payload* and run its module body; *label* names it in every reason."""
        self.label = label
        self._filename = f"<{label}>"
        if len(payload) > MAX_PAYLOAD:
            raise ApplicationError(
                f"{label}: the payload is {len(payload)} bytes, over the slot's {MAX_PAYLOAD}"
            )
        try:
            source = payload.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ApplicationError(
                f"{label}: the payload is not UTF-8 Python (byte {exc.start})"
            ) from None
        try:
            code = compile(source, self._filename, "exec", dont_inherit=True)
        except (SyntaxError, ValueError) as exc:  # ValueError: a NUL in the source
            line = getattr(exc, "lineno", None)
            at = f" at line {line}" if line else ""
            raise ApplicationError(f"{label}: the payload is not Python{at}: {exc}") from None
        except (RecursionError, MemoryError):  # nesting deeper than the compiler goes
            raise ApplicationError(f"{label}: the payload nests too deep to compile") from None
        module = types.ModuleType("application")
        self._run("loading", lambda: exec(code, module.__dict__))  # noqa: S102
        entries = {}
        for name in ENTRY_POINTS:
            entry = module.__dict__.get(name)
            if not callable(entry):
                raise ApplicationError(f"{label}: the application has no {name}()")
            entries[name] = entry
        self._entries = entries
        self._state: object = None

    def _run(self, what: str, call: Callable[[], Any]) -> Any:
        """Call into the application; whatever it raises is its crash, with its line."""
        try:
            return call()
        except (Exception, SystemExit) as exc:  # SystemExit: an application's sys.exit()
            raise ApplicationError(
                f"{self.label} crashed {what}: {type(exc).__name__}: {str(exc)[:MAX_REASON]}"
                + _where(exc, self._filename)
            ) from None

    def boot(self, device_id: str) -> None:
        """The application's boot; ApplicationError if it crashed."""
        self._state = self._run("on boot", lambda: self._entries["boot"](device_id))

    def health_check(self) -> str | None:
        """None when the application calls itself healthy, else its reason (one line)."""
        reason = self._run(
            "in its health check", lambda: self._entries["health_check"](self._state)
        )
        if reason is None:
            return None
        if not isinstance(reason, str) or not reason:
            return f"the health check answered {type(reason).__name__}, not None or a reason"
        return reason[:MAX_REASON].replace("\n", " ")

    def sample(self, uptime_s: int) -> dict[str, int]:
        """The readings at *uptime_s*, checked: a few named integers."""
        readings = self._run("sampling", lambda: self._entries["sample"](self._state, uptime_s))
        if not isinstance(readings, dict) or len(readings) > MAX_READINGS:
            raise ApplicationError(
                f"{self.label}: sample() answered no map of at most {MAX_READINGS} readings"
            )
        for name, value in readings.items():
            named = isinstance(name, str) and 0 < len(name) <= MAX_NAME and name.isidentifier()
            number = isinstance(value, int) and not isinstance(value, bool)
            if not named or not number or not -READING_LIMIT <= value < READING_LIMIT:
                raise ApplicationError(
                    f"{self.label}: sample() answered {name!r:.40}: {value!r:.40},"
                    " not a named 32-bit integer"
                )
        return dict(readings)
