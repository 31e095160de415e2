"""The compartment a simulated board's application runs in: a process of its own.

An application run in the board's own interpreter reaches whatever the board
holds: its root-of-trust object, by walking the stack or the heap, and every
file the board may read, the DICE UDS among them, from which it could derive
the Alias key of an endorsed image and forge evidence. A device keeps its
application away from its root of trust with an MPU or TrustZone; here a
process boundary and an unprivileged user stand in for them. The board
(``device_runtime/application.py``) starts

    python -S -P -m device_runtime.application_compartment

with nothing but ``PYTHONPATH`` in its environment, ``/`` as its working
directory and no file descriptor but a pipe each way, and tells it the payload
and nothing else: no root of trust, no board directory, no key.

Before it reads the payload the compartment confines itself: limits on memory,
CPU time and core dumps; when it runs as root, a network namespace of its own
where the kernel grants one (no broker, no swtpm port), no supplementary
groups, and the ``nobody`` user and group, so no 0600 file of the board's can
be opened; then no child processes or threads, no new privileges, and death
with the board. Once it is ``nobody``, what the application can import is
what that user can read (an application has no library path on a device
either). Its ``print`` goes nowhere: the pipe moves to descriptors of its own
first.

The pipe carries frames: a 4-byte big-endian length, then one CBOR item
(:mod:`device_runtime.core.cbor`). The board sends ``["load", payload]``,
``["boot", device_id]``, ``["health_check", None]`` and ``["sample",
uptime_s]``; the compartment answers each, and first says it is ready, with a
one-entry map: ``{"ok": value}``, ``{"crash": reason}`` (the application
raised), ``{"refused": reason}`` (the payload is no application) or
``{"answered": what}`` (it returned what the protocol does not carry, *what*
saying what it was). Everything in the compartment is the application's, so
the board checks every frame as hostile.
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import types
from collections.abc import Callable

from device_runtime.core import cbor

FRAME_HEADER = 4
MAX_ANSWER = 4096
"""Bytes an answer frame may have: a full set of readings or a reason is far less."""
MAX_REASON = 256
ENTRY_POINTS = ("boot", "health_check", "sample")
FILENAME = "<application>"
CBOR_INTEGER = 1 << 64
"""Integers the protocol carries lie within plus or minus this."""
NOBODY = 65534
"""The uid and gid of ``nobody`` and ``nogroup`` on Linux (the kernel's overflow ids)."""
MEMORY_LIMIT = 512 << 20
CPU_LIMIT_S = 60
"""CPU seconds in all: a board's application computes a few readings a beat."""
CLONE_NEWNET = 0x40000000
PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38


class _Refused(Exception):
    """The payload is no application; the reason says why."""


def frame(message: object) -> bytes:
    """*message* as it crosses the pipe: its CBOR, after its length."""
    body = cbor.dumps(message)
    return len(body).to_bytes(FRAME_HEADER, "big") + body


def _confine(board: int) -> None:
    """Give up, for good, what the application must not have (see the module docstring)."""
    for limit, value in ((resource.RLIMIT_AS, MEMORY_LIMIT), (resource.RLIMIT_CPU, CPU_LIMIT_S),
                         (resource.RLIMIT_CORE, 0)):  # fmt: skip
        resource.setrlimit(limit, (value, value))
    libc = ctypes.CDLL(None, use_errno=True)
    if os.geteuid() == 0:
        libc.unshare(CLONE_NEWNET)  # refused in a container without CAP_SYS_ADMIN: left open
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
    resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))
    # After the uid changed, which clears the parent-death signal.
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) or libc.prctl(
        PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0
    ):
        raise OSError(ctypes.get_errno(), "prctl")
    if os.getppid() != board:
        os._exit(1)  # the board died before the signal was armed


def _load(payload: bytes) -> dict[str, Callable[..., object]]:
    """Compile *payload* and run its module body: its entry points, or _Refused with why."""
    try:
        source = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Refused(f"the payload is not UTF-8 Python (byte {exc.start})") from None
    try:
        code = compile(source, FILENAME, "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as exc:  # ValueError: a NUL in the source
        line = getattr(exc, "lineno", None)
        at = f" at line {line}" if line else ""
        raise _Refused(f"the payload is not Python{at}: {exc}") from None
    except (RecursionError, MemoryError):  # nesting deeper than the compiler goes
        raise _Refused("the payload nests too deep to compile") from None
    module = types.ModuleType("application")
    exec(code, module.__dict__)  # noqa: S102
    entries = {}
    for name in ENTRY_POINTS:
        entry = module.__dict__.get(name)
        if not callable(entry):
            raise _Refused(f"the application has no {name}()")
        entries[name] = entry
    return entries


def _crash(exc: BaseException) -> str:
    """What the application raised, and its own line it came from."""
    line = None
    trace = exc.__traceback__
    while trace is not None:
        if trace.tb_frame.f_code.co_filename == FILENAME:
            line = trace.tb_lineno
        trace = trace.tb_next
    where = f" (line {line})" if line else ""
    return f"{type(exc).__name__}: {str(exc)[:MAX_REASON]}{where}"


def _health(reason: object) -> dict[str, object]:
    if reason is None or isinstance(reason, str):
        return {"ok": reason}
    return {"answered": type(reason).__name__}


def _readings(readings: object) -> dict[str, object]:
    """Readings the protocol can carry, else what was wrong; the board checks the rest."""
    if not isinstance(readings, dict):
        return {"answered": type(readings).__name__}
    for name, value in readings.items():
        if not isinstance(name, str) or type(value) is not int or abs(value) >= CBOR_INTEGER:
            return {"answered": f"{name!r:.40}: {value!r:.40}"}
    return {"ok": dict(readings)}


class _Running:
    """The application as the compartment holds it: its entry points once loaded, and the
    state its boot() returned (which never leaves the compartment)."""

    def __init__(self) -> None:
        self.entries: dict[str, Callable[..., object]] = {}
        self.state: object = None

    def answer(self, verb: object, argument: object) -> dict[str, object]:
        """The answer to one request of the board's."""
        try:
            if verb == "load":
                assert isinstance(argument, bytes)
                self.entries = _load(argument)
                return {"ok": None}
            if verb == "boot":
                self.state = self.entries["boot"](argument)
                return {"ok": None}
            if verb == "health_check":
                return _health(self.entries["health_check"](self.state))
            return _readings(self.entries["sample"](self.state, argument))
        except _Refused as exc:
            return {"refused": str(exc)}
        except BaseException as exc:  # SystemExit and KeyboardInterrupt, too, are its crash
            return {"crash": _crash(exc)}


def _read(fd: int, n: int) -> bytes | None:
    """*n* bytes from the board, or None when it closed the pipe."""
    data = b""
    while len(data) < n:
        part = os.read(fd, n - len(data))
        if not part:
            return None
        data += part
    return data


def _send(fd: int, answer: dict[str, object]) -> None:
    try:
        data = frame(answer)
    except (TypeError, ValueError):  # a reason no UTF-8 can carry, say
        data = frame({"answered": "something CBOR does not carry"})
    while data:
        data = data[os.write(fd, data) :]


def main() -> None:
    board = os.getppid()
    requests, answers = os.dup(0), os.dup(1)
    nowhere = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(nowhere, fd)
    _confine(board)
    _send(answers, {"ok": None})
    running = _Running()
    while True:
        header = _read(requests, FRAME_HEADER)
        body = None if header is None else _read(requests, int.from_bytes(header, "big"))
        if body is None:
            return  # the board is done with the application
        request = cbor.loads(body)
        assert isinstance(request, list) and len(request) == 2  # the board's own
        _send(answers, running.answer(request[0], request[1]))


if __name__ == "__main__":
    main()
