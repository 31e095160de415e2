"""The REST API's bearer-token check: one FastAPI dependency per kind of caller.

Tokens are compared in constant time, and the refusal names which token was
wanted, never what was presented. Each dependency made here keeps its
:class:`BearerCheck`, so :func:`route_checks` can tell, from a route's own
dependencies, which tokens it accepts; :mod:`fleet_platform.request_limits`
uses that to refuse a request before its body is read, without a second
table of routes and tokens to keep in step.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Annotated
from weakref import WeakKeyDictionary

from fastapi import Header, HTTPException
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from fleet_platform.api_tokens import OPERATOR, TOKEN_NAMES


class BearerCheck:
    """Whether an ``Authorization`` header carries the *name* token, in constant time."""

    __slots__ = ("_expected", "name")

    def __init__(self, token: str, *, name: str) -> None:
        if name not in TOKEN_NAMES:
            raise ValueError(f"token name must be one of {', '.join(TOKEN_NAMES)}, not {name!r}")
        self.name = name
        self._expected = f"Bearer {token}".encode()

    @property
    def refusal(self) -> str:
        """The 401's detail: which token was wanted."""
        return f"missing or wrong {self.name} token"

    def admits(self, authorization: bytes | None) -> bool:
        return hmac.compare_digest(authorization or b"", self._expected)


_CHECKS: WeakKeyDictionary[Callable[..., None], BearerCheck] = WeakKeyDictionary()


def bearer_dependency(token: str, *, name: str = OPERATOR) -> Callable[[str | None], None]:
    """A FastAPI dependency that admits only requests carrying the *name* token *token*."""
    check = BearerCheck(token, name=name)

    def authorized(authorization: Annotated[str | None, Header()] = None) -> None:
        if not check.admits((authorization or "").encode()):
            raise HTTPException(
                status_code=401, detail=check.refusal, headers={"WWW-Authenticate": "Bearer"}
            )

    _CHECKS[authorized] = check
    return authorized


def _check_of(call: Callable[..., object] | None) -> BearerCheck | None:
    try:
        return _CHECKS.get(call) if call is not None else None  # type: ignore[arg-type]
    except TypeError:  # a dependency that cannot be weakly referenced is none of ours
        return None


def route_checks(route: object) -> tuple[BearerCheck, ...]:
    """The bearer checks *route* depends on, however deeply; empty for a public route."""
    if not isinstance(route, APIRoute):
        return ()
    found: list[BearerCheck] = []
    pending: list[Dependant] = [route.dependant]
    while pending:
        dependant = pending.pop()
        check = _check_of(dependant.call)
        if check is not None and check not in found:
            found.append(check)
        pending.extend(dependant.dependencies)
    return tuple(found)
