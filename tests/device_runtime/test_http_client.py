"""The device's HTTP client against a real loopback server that answers what each test scripts.

Each refusal must be the specific one (HttpError or TooLarge with its reason),
never another exception, and a body announced over the limit is refused before
any of it is read.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device_runtime.core.errors import SevenfoldError, TooLarge
from device_runtime.core.http_client import HttpError, http_get


class ScriptedServer:
    """Accepts connections and answers each with the next scripted bytes, then closes."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.answers: list[bytes] = []
        self.requests: list[bytes] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                request = b""
                while b"\r\n\r\n" not in request:
                    data = conn.recv(4096)
                    if not data:
                        break
                    request += data
                self.requests.append(request)
                if self.answers:
                    conn.sendall(self.answers.pop(0))

    def url(self, path: str = "/file") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    scripted = ScriptedServer()
    yield scripted
    scripted.listener.close()


def _body(server: ScriptedServer, answer: bytes, max_length: int = 100, offset: int = 0) -> bytes:
    server.answers.append(answer)
    response = http_get(server.url(), offset=offset, max_length=max_length, timeout_s=5)
    try:
        out = b""
        while chunk := response.read(7):
            out += chunk
        return out
    finally:
        response.close()


def test_content_length_body(server: ScriptedServer) -> None:
    server.answers.append(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
    response = http_get(server.url(), max_length=5, timeout_s=5)
    assert (response.status, response.length, response.content_range) == (200, 5, None)
    assert response.read(100) == b"hello"
    assert response.read(100) == b""
    response.close()
    assert b"Range" not in server.requests[0]
    assert server.requests[0].startswith(b"GET /file HTTP/1.1\r\nHost: 127.0.0.1:")


def test_range_request_and_content_range(server: ScriptedServer) -> None:
    server.answers.append(
        b"HTTP/1.1 206 Partial\r\nContent-Range: bytes 3-4/5\r\nContent-Length: 2\r\n\r\nlo"
    )
    response = http_get(server.url(), offset=3, max_length=5, timeout_s=5)
    assert (response.status, response.content_range, response.read(9)) == (206, (3, 4, 5), b"lo")
    assert b"\r\nRange: bytes=3-\r\n" in server.requests[0]


def test_chunked_and_close_delimited_bodies(server: ScriptedServer) -> None:
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunked = head + b"3;x=y\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    assert _body(server, chunked) == b"abcde"
    assert _body(server, b"HTTP/1.0 404 Not Found\r\n\r\nnope") == b"nope"


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 101\r\n\r\n", "over the limit of 100"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n65\r\n", "over the limit"),
        (b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * 101, "over the limit"),
    ],
)
def test_too_large_bodies(server: ScriptedServer, answer: bytes, reason: str) -> None:
    with pytest.raises(TooLarge, match=reason):
        _body(server, answer)


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (b"HTTP/2 200 OK\r\n\r\n", "malformed status line"),
        (b"HTTP/1.1 2x0 OK\r\n\r\n", "malformed status line"),
        ("HTTP/1.1 \u00b200 OK\r\n\r\n".encode(), "malformed status line"),
        ("HTTP/1.1 200 OK\r\nContent-Length: \u00b2\r\n\r\n".encode(), "not a decimal number"),
        (b"HTTP/1.1 200 OK\r\n" + b"a" * 2000, "over 1024 bytes"),
        (b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n", "malformed header line"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "not a decimal number"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", "conflicting"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "unsupported Transfer-Enc"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc", "truncated"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "chunk size"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n", "longer than"),
        (b"HTTP/1.1 206 OK\r\nContent-Length: 1\r\n\r\na", "206 without Content-Range"),
        (b"HTTP/1.1 200 OK\r\nContent-Range: bytes 5-3/9\r\n\r\n", "not within its total"),
        (b"HTTP/1.1 200 OK\r\n" + b"A: b\r\n" * 65 + b"\r\n", "more than 64 headers"),
        (b"HTTP/1.1 200 OK\r\nConte", "closed inside the response head"),
    ],
)
def test_malformed_answers(server: ScriptedServer, answer: bytes, reason: str) -> None:
    with pytest.raises(HttpError, match=reason):
        _body(server, answer)


@pytest.mark.parametrize(
    "url", ["https://example.org/", "ftp://x/", "http:///x", "http://h:99999/", "http://h/a b"]
)
def test_refused_urls(url: str) -> None:
    with pytest.raises(HttpError):
        http_get(url, max_length=1, timeout_s=1)


def test_unreachable_server_is_an_http_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(HttpError, match="cannot GET"):
        http_get(f"http://127.0.0.1:{port}/", max_length=1, timeout_s=1)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=300))
def test_any_answer_is_a_body_or_a_specific_refusal(answer: bytes) -> None:
    scripted = ScriptedServer()
    try:
        _body(scripted, answer, max_length=64)
    except SevenfoldError as exc:
        assert isinstance(exc, (HttpError, TooLarge)) and exc.reason
    finally:
        scripted.listener.close()
