"""The operator API token: generated per installation, never a default.

The server writes a random token to its state directory (mode 0600) the first
time it starts; the CLI on the same machine reads it from there, and remote
clients are given it out of band. Requests present it as a bearer token and it
is compared in constant time.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

from fastapi import Header, HTTPException

from device_runtime.ports.cpython.atomic_file import write_atomic

TOKEN_FILE = "operator.token"  # noqa: S105 - a file name, not a secret


def load_or_create(state_dir: Path) -> str:
    path = state_dir / TOKEN_FILE
    if path.exists():
        token = path.read_text().strip()
        if len(token) >= 32:
            return token
    token = secrets.token_urlsafe(32)
    write_atomic(path, token.encode(), mode=0o600)
    return token


def read(state_dir: Path) -> str | None:
    """The token a local CLI uses; None when no server has run with this state dir."""
    try:
        return (state_dir / TOKEN_FILE).read_text().strip()
    except FileNotFoundError:
        return None


def bearer_dependency(token: str) -> Callable[[str | None], None]:
    """A FastAPI dependency that admits only requests carrying *token*."""
    expected = f"Bearer {token}".encode()

    def authorized(authorization: Annotated[str | None, Header()] = None) -> None:
        presented = (authorization or "").encode()
        if not hmac.compare_digest(presented, expected):
            raise HTTPException(
                status_code=401,
                detail="missing or wrong operator token",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return authorized
