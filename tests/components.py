"""Where the real components the tests start live, and a skip when one is absent."""

from __future__ import annotations

import os
import shutil
import socket
import sys
from pathlib import Path

from tests.strict_mode import missing

APT = "apt-get install mosquitto swtpm swtpm-tools libtss2-dev tshark faketime ieee-data"


def binary(name: str, how: str = APT) -> str:
    """Path of an executable, looked up beside the running Python first (venv tools)."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if found is None:
        missing(name, how)
        raise AssertionError("unreachable")
    return found


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def shared_dir(kind: str) -> Path:
    """A folder of ../shared (or $SEVENFOLD_SHARED), skipped when absent."""
    root = Path(os.environ.get("SEVENFOLD_SHARED", Path(__file__).resolve().parents[2] / "shared"))
    path = root / kind
    if not path.is_dir():
        missing(f"shared/{kind}", "set SEVENFOLD_SHARED to the folder holding the shared test data")
    return path
