"""A small HTTP/1.1 GET client for the device core, on CPython and MicroPython.

A device fetches update metadata and images over plain HTTP: what it receives
is trusted only once TUF has checked it, so the transport need not be secret,
but it must never let a server make it buffer without bound. Every part of an
answer has a limit, checked before the bytes are kept: the status line and each
header line (``MAX_LINE``), the number of headers, the body (*max_length*, from
Content-Length before any body byte is read, or counted as it arrives when the
server sends chunks or closes at the end). Every refusal names what was wrong.

Both interpreters have the same ``socket`` module calls used here
(``getaddrinfo``, ``connect``, ``settimeout``, ``send``, ``recv``), so there is
one implementation. ``https`` is not spoken: TUF signs what matters.
"""

import socket

from device_runtime.core.decimal_digits import is_digits
from device_runtime.core.errors import SevenfoldError, TooLarge

MAX_LINE = 1024
MAX_HEADERS = 64
RECV_SIZE = 1024


class HttpError(SevenfoldError):
    """The server could not be reached or broke HTTP; the reason says how."""

    code = "http"


def _split_url(url: str) -> tuple[str, int, str]:
    if not isinstance(url, str) or not url.startswith("http://"):
        raise HttpError("only http:// URLs are fetched, not " + repr(url)[:80])
    rest = url[7:]
    slash = rest.find("/")
    authority, path = (rest, "/") if slash < 0 else (rest[:slash], rest[slash:])
    port = 80
    if authority.startswith("["):
        close = authority.find("]")
        host, tail = authority[1:close], authority[close + 1 :]
        if close < 0 or (tail and not tail.startswith(":")):
            raise HttpError("malformed IPv6 host in URL")
    else:
        host, _, port_text = authority.partition(":")
        tail = ":" + port_text if port_text else ""
    if tail:
        if not is_digits(tail[1:]) or not 0 < int(tail[1:]) < 65536:
            raise HttpError("malformed port in URL")
        port = int(tail[1:])
    if not host or any(c in host for c in " @\r\n"):
        raise HttpError("malformed host in URL")
    if any(c in path for c in " \r\n#") or len(path) > MAX_LINE - 32:
        raise HttpError("path has spaces, control or fragment characters, or is too long")
    return host, port, path


def _digits(text: str, what: str) -> int:
    text = text.strip()
    if not is_digits(text) or len(text) > 18:
        raise HttpError(what + " is not a decimal number: " + repr(text)[:40])
    return int(text)


def _content_range(value: str) -> tuple[int, int, int]:
    unit, _, spec = value.strip().partition(" ")
    span, slash, total = spec.partition("/")
    start, dash, end = span.partition("-")
    if unit != "bytes" or not slash or not dash:
        raise HttpError("malformed Content-Range " + repr(value)[:60])
    first, last = _digits(start, "range start"), _digits(end, "range end")
    size = _digits(total, "range total")
    if first > last or last >= size:
        raise HttpError("Content-Range " + repr(value)[:60] + " is not within its total")
    return first, last, size


class HttpResponse:
    """The answer to one GET: status and framing headers read, the body still on the wire.

    ``read(n)`` returns up to *n* body bytes and ``b""`` at the end; it raises
    HttpError on a body cut short and TooLarge once the body passes its limit.
    """

    def __init__(self, sock: "socket.socket", max_length: int) -> None:
        self._sock: socket.socket | None = sock
        self._buffer = b""
        self._max_length = max_length
        self._received = 0
        self._chunked = False
        self._chunk_left = 0
        self._done = False
        self.status = 0
        self.length: int | None = None
        self.content_range: tuple[int, int, int] | None = None
        self._read_head()

    def _fill(self) -> bool:
        if self._sock is None:
            return False
        try:
            data = self._sock.recv(RECV_SIZE)
        except OSError as exc:
            raise HttpError("receive failed: " + str(exc)) from None
        self._buffer += data
        return bool(data)

    def _line(self) -> str:
        while True:
            end = self._buffer.find(b"\r\n")
            if end >= 0:
                line, self._buffer = self._buffer[:end], self._buffer[end + 2 :]
                try:
                    return line.decode()
                except UnicodeError:
                    raise HttpError("header line is not UTF-8") from None
            if len(self._buffer) > MAX_LINE:
                raise HttpError("status or header line is over " + str(MAX_LINE) + " bytes")
            if not self._fill():
                raise HttpError("connection closed inside the response head")

    def _read_head(self) -> None:
        version, _, rest = self._line().partition(" ")
        code = rest[:3]
        if version[:7] != "HTTP/1." or not is_digits(code) or rest[3:4] not in ("", " "):
            raise HttpError("malformed status line")
        self.status = int(code)
        framing = ""
        for _ in range(MAX_HEADERS):
            line = self._line()
            if not line:
                break
            name, colon, value = line.partition(":")
            name = name.lower()
            if not colon or not name or name != name.strip():
                raise HttpError("malformed header line")
            if name == "content-length":
                length = _digits(value, "Content-Length")
                if self.length is not None and self.length != length:
                    raise HttpError("conflicting Content-Length headers")
                self.length = length
            elif name == "transfer-encoding":
                framing = value.strip().lower()
            elif name == "content-range" and "*" not in value:
                self.content_range = _content_range(value)
        else:
            raise HttpError("more than " + str(MAX_HEADERS) + " headers")
        if framing:
            if framing != "chunked":
                raise HttpError("unsupported Transfer-Encoding " + repr(framing)[:40])
            self._chunked = True
            self.length = None
        elif self.length is not None:
            self._check_limit(self.length)
        if self.status == 206:
            if self.content_range is None:
                raise HttpError("206 without Content-Range")
            start, end, _ = self.content_range
            if self.length is not None and self.length != end - start + 1:
                raise HttpError("Content-Length does not match Content-Range")

    def _check_limit(self, size: int) -> None:
        if size > self._max_length:
            raise TooLarge(
                "body of " + str(size) + " bytes is over the limit of " + str(self._max_length)
            )

    def _take(self, n: int) -> bytes:
        if not self._buffer:
            self._fill()
        data, self._buffer = self._buffer[:n], self._buffer[n:]
        return data

    def _next_chunk(self) -> None:
        if self._received:
            if self._line():
                raise HttpError("chunk data longer than its size")
        size_text = self._line().partition(";")[0].strip()
        try:
            size = int(size_text, 16) if 0 < len(size_text) <= 8 else -1
        except ValueError:
            size = -1
        if size < 0:
            raise HttpError("malformed chunk size " + repr(size_text)[:20])
        self._check_limit(self._received + size)
        if size == 0:
            for _ in range(MAX_HEADERS):
                if not self._line():
                    self._done = True
                    return
            raise HttpError("more than " + str(MAX_HEADERS) + " trailer lines")
        self._chunk_left = size

    def read(self, n: int) -> bytes:
        """Up to *n* bytes of the body; ``b""`` once it has all arrived."""
        if self._done or n <= 0:
            return b""
        if self._chunked:
            if not self._chunk_left:
                self._next_chunk()
                if self._done:
                    return b""
            data = self._take(min(n, self._chunk_left))
            self._chunk_left -= len(data)
        elif self.length is not None:
            data = self._take(min(n, self.length - self._received))
            if self._received + len(data) == self.length:
                self._done = True
        else:
            data = self._take(n)
            if not data:
                self._done = True
                return b""
            self._check_limit(self._received + len(data))
        if not data:
            raise HttpError(
                "connection closed after " + str(self._received) + " body bytes (truncated)"
            )
        self._received += len(data)
        return data

    def close(self) -> None:
        """Drop the connection (the request asked the server to close it anyway)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def http_get(url: str, *, offset: int = 0, max_length: int, timeout_s: float) -> HttpResponse:
    """GET *url*, from byte *offset* on (``Range: bytes=offset-``) when it is not zero.

    Returns once the status line and headers are read and checked; the caller
    reads the body and closes the response. A body announced over *max_length*
    is refused here, before any of it is read.
    """
    host, port, path = _split_url(url)
    if not isinstance(offset, int) or offset < 0 or not isinstance(max_length, int):
        raise HttpError("offset and max_length must be non-negative integers")
    head = "GET " + path + " HTTP/1.1\r\nHost: " + host
    head += ("" if port == 80 else ":" + str(port)) + "\r\nConnection: close\r\n"
    head += "Accept-Encoding: identity\r\nUser-Agent: sevenfold-device\r\n"
    if offset:
        head += "Range: bytes=" + str(offset) + "-\r\n"
    sock = None
    try:
        address = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0]
        sock = socket.socket(address[0], address[1], address[2])
        sock.settimeout(timeout_s)
        sock.connect(address[-1])
        payload = (head + "\r\n").encode()
        while payload:
            payload = payload[sock.send(payload) :]
        return HttpResponse(sock, max_length)
    except OSError as exc:
        if sock is not None:
            sock.close()
        raise HttpError("cannot GET from " + host + ":" + str(port) + ": " + str(exc)) from None
    except SevenfoldError:
        if sock is not None:
            sock.close()
        raise
