"""The application's compartment: it gets the payload and nothing of the board, and whatever
it does (escape, hang, crash, talk nonsense) is the application's failure, never the board's.

The board here is this test process, holding a DICE root of trust in a local
named ``rot`` and its directory in ``directory``, as ``run_board`` does when it
boots an application. The tests run as root, so the compartment also drops to
``nobody``; ``escaping_application.assert_confined`` says what holds without.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device_runtime.application import Application, ApplicationError
from device_runtime.application_compartment import frame
from device_runtime.simulator import BootedImage, open_root_of_trust
from tests.device_runtime.escaping_application import assert_confined, payload

ENTRY_POINTS = """
def health_check(state):
    return None

def sample(state, uptime_s):
    return {"uptime": uptime_s}
"""


def _app(boot_body: str, module: str = "") -> bytes:
    return f"{module}\ndef boot(device_id):\n    {boot_body}\n{ENTRY_POINTS}".encode()


@pytest.fixture
def load() -> Iterator[Callable[..., Application]]:
    """``load(payload, timeout_s=...)``: an Application, closed when the test ends."""
    opened: list[Application] = []

    def loaded(source: bytes, timeout_s: float = 5.0) -> Application:
        application = Application(source, label="firmware 6.6.6", timeout_s=timeout_s)
        opened.append(application)
        return application

    yield loaded
    for application in opened:
        application.close()


def test_an_application_reaches_nothing_of_the_board(
    load: Callable[..., Application], tmp_path: Path
) -> None:
    directory = tmp_path / "board"
    directory.mkdir()
    rot = open_root_of_trust(
        kind="dice", directory=directory, image=BootedImage("1.0.0", 1, bytes(32))
    )
    uds = directory / "uds" / "dice-uds"
    assert uds.read_bytes() and rot.kind == "dice"
    application = load(payload(uds))
    application.boot("dev-1")
    assert_confined(application.sample(0))


def test_a_hung_application_is_stopped_with_the_reason(load: Callable[..., Application]) -> None:
    hung = load(_app("while True: pass"), timeout_s=0.5)
    started = time.monotonic()
    with pytest.raises(
        ApplicationError, match=r"firmware 6\.6\.6 hung on boot: no answer in 0\.5 s"
    ):
        hung.boot("dev-1")
    assert time.monotonic() - started < 3
    with pytest.raises(ApplicationError, match=r"was stopped: firmware 6\.6\.6 hung on boot"):
        hung.health_check()
    with pytest.raises(ApplicationError, match=r"hung loading: no answer in 0\.5 s"):
        load(_app("return None", module="while True: pass"), timeout_s=0.5)
    sleeper = load(_app("return None").replace(b"return {", b"__import__('time').sleep(9); {"),
                   timeout_s=0.5)  # fmt: skip
    sleeper.boot("dev-1")
    with pytest.raises(ApplicationError, match="hung sampling"):
        sleeper.sample(1)


def test_an_application_whose_process_dies_is_reported(load: Callable[..., Application]) -> None:
    exits = load(_app("import os; os._exit(3)"))
    with pytest.raises(ApplicationError, match="crashed on boot: its process exited with status 3"):
        exits.boot("dev-1")
    killed = load(_app("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"))
    with pytest.raises(
        ApplicationError, match="crashed on boot: its process was killed by signal 11"
    ):
        killed.boot("dev-1")
    hog = load(_app("return bytearray(1 << 31)"))
    with pytest.raises(ApplicationError, match="crashed on boot: MemoryError"):
        hog.boot("dev-1")


def test_an_application_that_talks_nonsense_on_the_pipe_is_stopped(
    load: Callable[..., Application],
) -> None:
    """The compartment's pipe is reachable from the application (fd 4): what it writes there is
    checked like any answer."""
    for forged, reason in (
        (b"\xff\xff\xff\xff", "a 4294967295-byte answer"),
        (b"\x00\x00\x00\x01\xff", "unexpected break at offset 0"),
        (frame(None), "no one-entry map"),
        (frame({"evil": None}), "an answer 'evil'"),
        (frame({"crash": 5}), "an answer 'crash'"),
        (frame({"ok": 5}), "answered ok 5"),
    ):
        talker = load(_app(f"import os; os.write(4, {forged!r}); os._exit(0)"))
        with pytest.raises(
            ApplicationError,
            match=rf"firmware 6\.6\.6 broke the protocol on boot: .*{re.escape(reason)}",
        ):
            talker.boot("dev-1")
    printer = load(_app("print('noise' * 10000); return None"))
    printer.boot("dev-1")
    assert printer.sample(2) == {"uptime": 2}, "print() goes nowhere, not into the pipe"


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=64), st.booleans())
def test_whatever_an_application_writes_into_its_pipe_is_an_application_error(
    forged: bytes, then_exit: bool
) -> None:
    """Any bytes, then the process ending or hanging: boot() returns or raises ApplicationError,
    within its timeout, and nothing else escapes into the board."""
    after = "os._exit(0)" if then_exit else "time.sleep(60)"
    source = _app(f"import os, time; os.write(4, {forged!r}); {after}")
    with Application(source, label="firmware 6.6.6", timeout_s=0.3) as application:
        try:
            application.boot("dev-1")
        except ApplicationError as exc:
            assert exc.reason.startswith("firmware 6.6.6 ")


def test_the_compartment_dies_with_its_board(tmp_path: Path) -> None:
    board = subprocess.Popen(
        [sys.executable, "-c", BOARD], stdout=subprocess.PIPE, text=True, cwd=Path.cwd()
    )
    assert board.stdout is not None
    with board.stdout:
        compartment = int(board.stdout.readline())
    assert _alive(compartment)
    board.kill()
    board.wait()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _alive(compartment):
        time.sleep(0.05)
    assert not _alive(compartment), "the parent-death signal killed the application"


BOARD = """
from device_runtime.application import Application
application = Application(b'''
def boot(device_id):
    return None
def health_check(state):
    return None
def sample(state, uptime_s):
    import os
    if uptime_s:
        while True:
            pass
    return {"pid": os.getpid()}
''', label="firmware 6.6.6", timeout_s=60)
application.boot("dev-1")
print(application.sample(0)["pid"], flush=True)
application.sample(1)
"""
"""A board that starts an application, says its pid, and waits on it forever."""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False
