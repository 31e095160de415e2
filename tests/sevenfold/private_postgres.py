"""A PostgreSQL cluster of a test's own, which the test may kill and start again.

The shared PostgreSQL on 5432 serves every other test, so killing it is out of
the question; this one is created with ``initdb`` in a temporary directory and
listens on a free loopback port with its socket beside its data. PostgreSQL
refuses to run as root, so under root the cluster belongs to the ``postgres``
user and every program runs through ``runuser``; its directory is then made
under ``/tmp`` (pytest's own temporary directories are root's alone).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from tests.components import free_port
from tests.strict_mode import missing

BIN = Path(os.environ.get("SEVENFOLD_POSTGRES_BIN", "/usr/lib/postgresql/15/bin"))
"""Where Debian installs the server's programs (not on PATH)."""

RUN_AS = "postgres"
"""The user a cluster runs as when the tests run as root."""

START_TIMEOUT_S = 30


class PrivateCluster:
    """``initdb`` + ``pg_ctl``, on a free port, owned by whoever may run PostgreSQL here."""

    def __init__(self) -> None:
        for program in ("initdb", "pg_ctl", "postgres"):
            if not (BIN / program).exists():
                missing(
                    f"PostgreSQL server programs in {BIN}",
                    "apt-get install postgresql-15, or set SEVENFOLD_POSTGRES_BIN",
                )
        self._prefix: list[str] = []
        owner: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam(RUN_AS)
            except KeyError:
                missing(f"a {RUN_AS!r} user to run PostgreSQL as", "apt-get install postgresql")
            self._prefix = [shutil.which("runuser") or "/usr/sbin/runuser", "-u", RUN_AS, "--"]
        self.root = Path(tempfile.mkdtemp(prefix="sevenfold-pg-", dir="/tmp"))
        if owner is not None:
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.port = free_port()
        self._run(
            "initdb",
            "--auth=trust",
            "--username=postgres",
            "--encoding=UTF8",
            "--locale=C",
            # Only initdb's own writes skip fsync; the server itself syncs as configured.
            "--no-sync",
            "-D",
            str(self.data),
        )

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        """Start the server (again) on the same port and data; return once it takes connections."""
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
            " -c max_connections=40 -c shared_buffers=16MB"
        )
        self._run(
            "pg_ctl",
            "start",
            "-w",
            "-t",
            str(START_TIMEOUT_S),
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-o",
            options,
        )

    @property
    def postmaster_pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().splitlines()[0])

    def kill(self, timeout: float = 15.0) -> int:
        """SIGKILL the postmaster; return once none of its processes is left, so a restart works.

        A backend outlives its postmaster until it next checks on it, and while
        one is attached to the old shared memory a new postmaster refuses to
        start on the same data directory; it also refuses while the old
        postmaster's pid exists at all, even as a zombie its new parent has not
        reaped yet (its lock-file check is ``kill(pid, 0)``).
        """
        pid = self.postmaster_pid
        children = _children(pid)
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + timeout
        while _exists(pid) or any(_running(child) for child in children):
            if time.monotonic() >= deadline:
                raise AssertionError(f"PostgreSQL processes outlived their postmaster: {children}")
            time.sleep(0.02)
        return pid

    def stop(self) -> None:
        """Stop it if running and remove everything it wrote."""
        if (self.data / "postmaster.pid").exists():
            subprocess.run(
                [
                    *self._prefix,
                    str(BIN / "pg_ctl"),
                    "stop",
                    "-m",
                    "immediate",
                    "-D",
                    str(self.data),
                ],
                capture_output=True,
                timeout=30,
                check=False,
            )
        shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def _run(self, program: str, *arguments: str) -> None:
        done = subprocess.run(
            [*self._prefix, str(BIN / program), *arguments],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            raise AssertionError(
                f"{program} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}\n"
                f"{self.log_tail()}"
            )


def _children(pid: int) -> list[int]:
    """Processes whose parent is *pid*, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # The command name in parentheses may hold spaces; the fields after it do not.
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _exists(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def _running(pid: int) -> bool:
    """True while *pid* exists and is not a zombie (a zombie holds no shared memory)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"
