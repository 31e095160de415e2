"""An application that tries to escape its compartment, and what it must have found.

Its ``boot()`` does what a malicious release would, knowing the board better
than any attacker could (the test gives it the exact path of the board's DICE
UDS): it walks its stack looking for the board's locals, scans the heap for a
root-of-trust object, reads the UDS, reads the board process's environment and
file descriptors, forks, and counts the network interfaces and the regular
files it holds open. ``sample()`` reports each as an integer, so the test
reads them as readings.
"""

from __future__ import annotations

import os
from pathlib import Path

SOURCE = """
UDS = {uds!r}


def _works(call):
    try:
        call()
    except Exception:
        return 0
    return 1


def _fork():
    if os.fork() == 0:
        os._exit(0)


def _files_open():
    found = 0
    for fd in range(256):
        try:
            found += stat.S_ISREG(os.fstat(fd).st_mode)
        except OSError:
            pass
    return found


def boot(device_id):
    global os, stat
    import gc
    import os
    import stat
    import sys

    frames = 0
    frame = sys._getframe()
    while frame is not None:
        frames += "rot" in frame.f_locals or "directory" in frame.f_locals
        frame = frame.f_back
    interfaces = open("/proc/self/net/dev").read().splitlines()[2:]
    board = os.getppid()
    return {{
        "board_frames": frames,
        "rot_objects": sum("RootOfTrust" in type(o).__name__ for o in gc.get_objects()),
        "uds_read": _works(lambda: open(UDS, "rb").read()),
        "board_environ": _works(lambda: open("/proc/%d/environ" % board, "rb").read()),
        "board_fds": _works(lambda: os.listdir("/proc/%d/fd" % board)),
        "forked": _works(_fork),
        "uid": os.getuid(),
        "interfaces": sum(not line.strip().startswith("lo:") for line in interfaces),
        "environment": len(os.environ),
        "cwd_is_root": int(os.getcwd() == "/"),
        "files_open": _files_open(),
    }}


def health_check(state):
    return None


def sample(state, uptime_s):
    return state
"""


def payload(uds: Path) -> bytes:
    """The escaping application, aimed at the UDS file *uds*."""
    return SOURCE.format(uds=str(uds)).encode()


def _has_sys_admin() -> bool:
    """Whether this process may make namespaces (root in a container may not)."""
    status = Path("/proc/self/status").read_text()
    effective = next(line for line in status.splitlines() if line.startswith("CapEff:"))
    return bool(int(effective.split()[1], 16) & (1 << 21))


def assert_confined(found: dict[str, int]) -> None:
    """*found* (the escaping application's readings) shows it reached nothing of the board."""
    assert found["board_frames"] == 0, "the board's frames are not on the application's stack"
    assert found["rot_objects"] == 0, "no root-of-trust object is in the application's heap"
    assert found["forked"] == 0
    assert found["files_open"] == 0, "the board's files are not inherited"
    assert found["cwd_is_root"] == 1
    assert found["environment"] <= 2, "PYTHONPATH (and LC_CTYPE, which Python may set) only"
    if os.geteuid() != 0:
        return  # same user as the board: file isolation is the OS's (docs/firmware.md, Limits)
    assert found["uid"] == 65534
    assert found["uds_read"] == 0, "the UDS is 0600 root's"
    assert found["board_environ"] == 0 and found["board_fds"] == 0
    if _has_sys_admin():
        assert found["interfaces"] == 0, "a network namespace of its own: loopback only"
