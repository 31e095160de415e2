"""The server's API tokens, one per kind of caller: generated per installation, never a default.

Operators and the sites' passive sensors get separate tokens so that a sensor,
which sits on a plant network and is the easier machine to compromise, cannot
read the fleet's inventory or alerts, and an operator token cannot inject
fake assets; factory stations get a third, which only registers
provisioned devices. The server writes each random token to its state directory (mode
0600, atomically) the first time it starts; tools on the same machine read
them from there, remote ones are given them out of band. Requests present a
token as a bearer token (:mod:`fleet_platform.bearer_auth` checks it, in
constant time). This module needs nothing beyond the standard library, so a
sensor can read its token without the server's dependencies.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from device_runtime.ports.cpython.atomic_file import write_atomic

OPERATOR = "operator"
SENSOR = "sensor"
FACTORY = "factory"
"""Factory stations: they register provisioned devices and can do nothing else."""
TOKEN_NAMES = (OPERATOR, SENSOR, FACTORY)

MIN_TOKEN_LENGTH = 32
"""A shorter file content is treated as damaged and replaced by a fresh token."""


def _known(name: str) -> str:
    if name not in TOKEN_NAMES:
        raise ValueError(f"token name must be one of {', '.join(TOKEN_NAMES)}, not {name!r}")
    return name


def token_file(name: str) -> str:
    """The file name, inside the state directory, of the *name* token."""
    return f"{_known(name)}.token"


TOKEN_FILE = token_file(OPERATOR)


def load_or_create(state_dir: Path, *, name: str = OPERATOR) -> str:
    """The *name* token of this installation, created on first use."""
    path = state_dir / token_file(name)
    if path.exists():
        token = path.read_text().strip()
        if len(token) >= MIN_TOKEN_LENGTH:
            return token
    token = secrets.token_urlsafe(32)
    write_atomic(path, token.encode(), mode=0o600)
    return token


def read(state_dir: Path, *, name: str = OPERATOR) -> str | None:
    """The token a local tool uses; None when no server has run with this state dir."""
    try:
        return (state_dir / token_file(name)).read_text().strip()
    except FileNotFoundError:
        return None
