"""The REST API's bearer-token check: one FastAPI dependency per kind of caller.

Tokens are compared in constant time, and the refusal names which token was
wanted, never what was presented.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Annotated

from fastapi import Header, HTTPException

from fleet_platform.api_tokens import OPERATOR, TOKEN_NAMES


def bearer_dependency(token: str, *, name: str = OPERATOR) -> Callable[[str | None], None]:
    """A FastAPI dependency that admits only requests carrying the *name* token *token*."""
    expected = f"Bearer {token}".encode()
    if name not in TOKEN_NAMES:
        raise ValueError(f"token name must be one of {', '.join(TOKEN_NAMES)}, not {name!r}")
    refusal = f"missing or wrong {name} token"

    def authorized(authorization: Annotated[str | None, Header()] = None) -> None:
        presented = (authorization or "").encode()
        if not hmac.compare_digest(presented, expected):
            raise HTTPException(
                status_code=401, detail=refusal, headers={"WWW-Authenticate": "Bearer"}
            )

    return authorized
