"""What a request must pass before the application reads a byte of its body.

FastAPI reads and parses a request's body before it runs a route's
dependencies, the token check among them: without this middleware a client
holding no token could make the server read a 300 MB body, or have malformed
JSON answered 422, before being told 401. The middleware lets the router pick
the route, and when the application first asks for the body it checks, in
this order, before passing a single byte on:

1. **Token.** When the route's dependencies include bearer checks
   (:func:`fleet_platform.bearer_auth.route_checks`, so the routes stay the
   one place that says which token each accepts), an ``Authorization`` header
   none of them admits is refused with 401.
2. **Declared size.** A ``Content-Length`` over the route's limit is refused
   with 413.
3. **Streamed size.** The body is counted as the application receives it
   (a chunked one too); the chunk that takes it past the limit is never
   handed over, and the application's answer is replaced by 413. No more than
   the limit, plus one transport chunk, is ever held.

A route class raises its limit with a ``max_body_bytes`` attribute (the
sensors' inventory and alert uploads); every other route, and a request that
matches none, gets :data:`DEFAULT_MAX_BODY_BYTES`. Any answer given while
part of the body is still unread closes the connection: keeping it open would
make the HTTP server read and discard the rest to reach the next request.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fleet_platform.bearer_auth import route_checks

DEFAULT_MAX_BODY_BYTES = 64 << 10
"""Enough for any JSON body but the sensors' uploads: a registration is under 16 KiB."""

BODY_LIMIT_ATTRIBUTE = "max_body_bytes"
"""The route (class) attribute that declares a route's own body limit, in bytes."""

_CLOSE = (b"connection", b"close")


class Refused(Exception):
    """Raised from ``receive`` instead of handing the application a body it must not have."""


class RequestLimits:
    """Pure ASGI middleware: the token, then the body's size, before the body is read."""

    def __init__(
        self, app: ASGIApp, *, default_max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    ) -> None:
        self.app = app
        self.default_max_body_bytes = default_max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        guard = _Guard(scope, receive, send, self.default_max_body_bytes)
        try:
            await self.app(scope, guard.receive, guard.send)
        except Refused:
            if guard.started:
                raise
        if guard.refusal is not None and not guard.started:
            await guard.refuse(*guard.refusal)


class _Guard:
    """One request's view of its body: checked before the first byte, counted after."""

    def __init__(self, scope: Scope, receive: Receive, send: Send, default_limit: int) -> None:
        self._scope = scope
        self._receive = receive
        self._send = send
        self._headers = _headers(scope)
        self._limit = default_limit
        self._checked = False
        self._received = 0
        self._unread = self._headers.get(b"content-length", b"0") != b"0" or (
            b"transfer-encoding" in self._headers
        )
        self.refusal: tuple[int, str, bool] | None = None
        """Status, detail and whether to challenge for a bearer token, once refused."""
        self.started = False
        """Whether an answer has begun going out (the application's or the refusal)."""

    async def receive(self) -> Message:
        if not self._checked and not self.started:
            self._checked = True
            self.refusal = self._check(self._scope.get("route"))
        if self.refusal is not None:
            raise Refused(self.refusal[1])
        message = await self._receive()
        if message["type"] == "http.request":
            self._received += len(message.get("body", b""))
            if not message.get("more_body", False):
                self._unread = False
            if self._received > self._limit:
                self.refusal = (413, _too_large(self._limit), False)
                raise Refused(self.refusal[1])
        return message

    def _check(self, route: Any) -> tuple[int, str, bool] | None:
        """Why the request must not reach its body: the token first, then the declared size."""
        for check in route_checks(route):
            if not check.admits(self._headers.get(b"authorization")):
                return 401, check.refusal, True
        declared = getattr(route, BODY_LIMIT_ATTRIBUTE, None)
        if isinstance(declared, int):
            self._limit = declared
        length = self._headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self._limit):
            return 413, _too_large(self._limit), False
        return None

    async def send(self, message: Message) -> None:
        if self.refusal is not None and not self.started:
            return  # whatever the application says about a body it was refused, 401 or 413 it is
        if message["type"] == "http.response.start":
            self.started = True
            if self._unread:
                message = {**message, "headers": [*message.get("headers", ()), _CLOSE]}
        await self._send(message)

    async def refuse(self, status: int, detail: str, bearer_challenge: bool) -> None:
        body = json.dumps({"detail": detail}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        if bearer_challenge:
            headers.append((b"www-authenticate", b"Bearer"))
        self.refusal = None
        await self.send({"type": "http.response.start", "status": status, "headers": headers})
        await self.send({"type": "http.response.body", "body": body})


def _headers(scope: Scope) -> dict[bytes, bytes]:
    """The request's headers by lowercase name; the first of a repeated one wins."""
    found: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        found.setdefault(name.lower(), value)
    return found


def _too_large(limit: int) -> str:
    return f"body larger than {limit} bytes"
