"""The whole server refuses a request for its token and its size before it reads the body."""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi.routing import APIRoute, iter_route_contexts

from fleet_platform import api_tokens
from fleet_platform.bearer_auth import route_checks
from fleet_platform.request_limits import DEFAULT_MAX_BODY_BYTES
from fleet_platform.server_config import ServerConfig
from passive_monitor.receiver.api import MAX_BODY_BYTES
from sevenfold.server import FleetServer
from tests.components import binary

HUGE = 300 << 20
ASSETS = "/api/v1/sites/plant-a/assets"
ALERTS = "/api/v1/sites/plant-a/alerts"
REGISTER = "/api/v1/provisioned-devices"
BODY_ROUTES = [("PUT", ASSETS, "sensor"), ("POST", ALERTS, "sensor"), ("POST", REGISTER, "factory")]
SENT_AT_MOST = 32 << 20
"""What a refused client may have pushed into the socket buffers, far below HUGE."""


@dataclass(frozen=True)
class Fleet:
    server: FleetServer
    url: str
    tokens: dict[str, str]

    def bearer(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[name]}"}

    def address(self) -> tuple[str, int]:
        parts = urlsplit(self.url)
        assert parts.hostname is not None and parts.port is not None
        return parts.hostname, parts.port


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    binary("mosquitto")
    state = tmp_path_factory.mktemp("limits")
    config = ServerConfig(
        state_dir=state,
        http_port=0,
        broker_port=0,
        recovery_port=0,
        attestation_gate=False,
        heartbeat_interval=1,
    )
    with FleetServer(config=config) as server:
        tokens = {}
        for name in api_tokens.TOKEN_NAMES:
            token = api_tokens.read(state, name=name)
            assert token is not None
            tokens[name] = token
        yield Fleet(server=server, url=server.http_url, tokens=tokens)


def _upload(
    fleet: Fleet, method: str, path: str, head: str, total: int, *, chunked: bool = False
) -> tuple[str, int, float]:
    """Send a *total*-byte body as fast as the server takes it; stop once it answers.

    Returns the answer, how many body bytes had been sent by then and how long it took.
    """
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {total}"
    request = f"{method} {path} HTTP/1.1\r\nHost: x\r\n{head}{framing}\r\n\r\n".encode()
    piece = b" " * 65536
    if chunked:
        piece = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    sent = 0
    pending = b""
    started = time.monotonic()
    with socket.create_connection(fleet.address(), timeout=30) as connection:
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        connection.sendall(request)
        while time.monotonic() - started < 60:
            readable, writable, _ = select.select([connection], [connection], [], 5)
            if readable:
                break
            if writable and sent < total:
                pending = pending or piece
                try:
                    taken = connection.send(pending)
                except (BrokenPipeError, ConnectionResetError):
                    break
                sent += taken
                pending = pending[taken:]
        answer = _read_answer(connection)
    return answer.decode(errors="replace"), sent, time.monotonic() - started


def _read_answer(connection: socket.socket) -> bytes:
    """Everything the server says until it closes the connection."""
    answer = b""
    connection.settimeout(10)
    try:
        while chunk := connection.recv(65536):
            answer += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return answer


def _detail(answer: str) -> object:
    return json.loads(answer.partition("\r\n\r\n")[2])["detail"]


def test_every_route_that_needs_a_token_is_guarded_by_it(fleet: Fleet) -> None:
    """The middleware's token check comes from the routes' own dependencies, for every route."""
    assert fleet.server.app is not None
    wanted = {}
    for context in iter_route_contexts(fleet.server.app.routes):
        route = context.original_route
        if isinstance(route, APIRoute):
            wanted[route.path] = {check.name for check in route_checks(route)}
    public = {path for path, names in wanted.items() if not names}
    assert public == {"/healthz", "/tuf/metadata/{name}", "/tuf/targets/{path:path}"}
    assert wanted["/api/v1/sites/{site}/assets"] == {"sensor"}
    assert wanted["/api/v1/sites/{site}/alerts"] == {"sensor"}
    assert wanted[REGISTER] == {"factory"}
    rest = set(wanted) - public - {"/api/v1/sites/{site}/assets", "/api/v1/sites/{site}/alerts"}
    assert {path: wanted[path] for path in rest - {REGISTER}} == {
        path: {"operator"} for path in rest - {REGISTER}
    }


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize(("method", "path", "kind"), BODY_ROUTES)
def test_a_huge_body_without_a_token_is_refused_before_it_is_read(
    fleet: Fleet, method: str, path: str, kind: str, chunked: bool
) -> None:
    answer, sent, elapsed = _upload(fleet, method, path, "", HUGE, chunked=chunked)
    assert answer.startswith("HTTP/1.1 401"), answer
    assert _detail(answer) == f"missing or wrong {kind} token"
    assert "www-authenticate: bearer" in answer.lower()
    assert sent < SENT_AT_MOST, f"the server took {sent} bytes before refusing"
    assert elapsed < 10


def test_a_streaming_client_learns_401_having_sent_little(fleet: Fleet) -> None:
    sent = 0

    def body() -> Iterator[bytes]:
        nonlocal sent
        chunk = b" " * (1 << 20)
        while sent < HUGE:
            sent += len(chunk)
            yield chunk

    headers = {"Content-Length": str(HUGE), "Content-Type": "application/json"}
    response = httpx.put(f"{fleet.url}{ASSETS}", content=body(), headers=headers, timeout=30)
    assert response.status_code == 401
    assert sent < SENT_AT_MOST


@pytest.mark.parametrize(("method", "path", "kind"), BODY_ROUTES)
def test_a_token_of_another_kind_is_refused_before_the_body(
    fleet: Fleet, method: str, path: str, kind: str
) -> None:
    for other in set(api_tokens.TOKEN_NAMES) - {kind}:
        head = f"Authorization: Bearer {fleet.tokens[other]}\r\n"
        answer, sent, _ = _upload(fleet, method, path, head, HUGE)
        assert answer.startswith("HTTP/1.1 401"), answer
        assert _detail(answer) == f"missing or wrong {kind} token"
        assert sent < SENT_AT_MOST


@pytest.mark.parametrize(
    "authorization", ["", "Bearer", "Basic eDp5", "Bearer wrong", "bearer {token}", "{token}"]
)
def test_missing_or_malformed_authorization_is_401(fleet: Fleet, authorization: str) -> None:
    value = authorization.format(token=fleet.tokens["factory"])
    headers = {"Authorization": value} if value else {}
    response = httpx.post(f"{fleet.url}{REGISTER}", content=b"{", headers=headers)
    assert response.status_code == 401
    assert response.json() == {"detail": "missing or wrong factory token"}
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(("method", "path", "kind"), BODY_ROUTES)
def test_malformed_json_is_401_without_the_token_and_422_with_it(
    fleet: Fleet, method: str, path: str, kind: str
) -> None:
    url = f"{fleet.url}{path}"
    json_type = {"Content-Type": "application/json"}
    refused = httpx.request(method, url, content=b'{"not json', headers=json_type)
    assert refused.status_code == 401, refused.text
    assert refused.json() == {"detail": f"missing or wrong {kind} token"}
    headers = {**json_type, **fleet.bearer(kind)}
    invalid = httpx.request(method, url, content=b'{"not json', headers=headers)
    assert invalid.status_code == 422, invalid.text


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize(
    ("method", "path", "kind", "limit"),
    [
        ("PUT", ASSETS, "sensor", MAX_BODY_BYTES),
        ("POST", REGISTER, "factory", DEFAULT_MAX_BODY_BYTES),
    ],
)
def test_a_body_over_the_limit_is_413_with_a_valid_token(
    fleet: Fleet, method: str, path: str, kind: str, limit: int, chunked: bool
) -> None:
    """A declared length is refused up front; a chunked body once it passes the limit."""
    head = f"Authorization: Bearer {fleet.tokens[kind]}\r\nContent-Type: application/json\r\n"
    answer, sent, elapsed = _upload(fleet, method, path, head, HUGE, chunked=chunked)
    assert answer.startswith("HTTP/1.1 413"), answer
    assert _detail(answer) == f"body larger than {limit} bytes"
    assert sent < (limit if chunked else 0) + SENT_AT_MOST and elapsed < 10


def test_a_body_within_the_default_limit_still_reaches_validation(fleet: Fleet) -> None:
    """Just under the limit is read and validated as before: 422, not 413."""
    headers = {**fleet.bearer("factory"), "Content-Type": "application/json"}
    body = b'{"device_id": "' + b"x" * (DEFAULT_MAX_BODY_BYTES - 64) + b'"}'
    response = httpx.post(f"{fleet.url}{REGISTER}", content=body, headers=headers)
    assert response.status_code == 422, response.text


def test_public_and_operator_routes_answer_as_before(fleet: Fleet) -> None:
    url = fleet.url
    assert httpx.get(f"{url}/healthz").status_code in (200, 503)
    assert httpx.get(f"{url}/openapi.json").status_code == 200
    assert httpx.get(f"{url}/docs").status_code == 200
    assert httpx.get(f"{url}/metrics").status_code == 401
    assert httpx.get(f"{url}/metrics", headers=fleet.bearer("operator")).status_code == 200
    assert httpx.get(f"{url}/api/v1/devices", headers=fleet.bearer("sensor")).status_code == 401
    devices = httpx.get(f"{url}/api/v1/devices", headers=fleet.bearer("operator"))
    assert devices.status_code == 200 and devices.json() == []
    assert httpx.get(f"{url}/tuf/metadata/root.json").status_code == 404
    assert httpx.get(f"{url}/nowhere").status_code == 404


def test_a_refusal_keeps_a_bodiless_connection_open(fleet: Fleet) -> None:
    """A 401 to a GET closes nothing: there is no unread body to discard."""
    with httpx.Client(base_url=fleet.url) as client:
        first = client.get("/api/v1/devices")
        assert first.status_code == 401 and "connection" not in first.headers
        assert client.get("/api/v1/devices", headers=fleet.bearer("operator")).status_code == 200
