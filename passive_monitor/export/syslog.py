"""Syslog transport for CEF: RFC 5424 messages over UDP, or over TCP with RFC 6587 framing.

Over UDP each datagram is one message. Over TCP the stream needs framing, and
octet counting (``LEN SP MSG``, RFC 6587 section 3.4.1) is used rather than a
trailing newline because a CEF message may legitimately contain escaped line
breaks and receivers that count octets never mis-split a message.
"""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime
from types import TracebackType
from urllib.parse import urlsplit

from device_runtime.core.errors import SevenfoldError

FACILITY_LOCAL0 = 16
# Alert severity -> syslog severity (2 critical, 3 error, 4 warning, 5 notice).
SYSLOG_SEVERITY = {"critical": 2, "high": 3, "medium": 4, "low": 5}
APP_NAME = "sevenfold"
MSGID = "alert"
MAX_UDP_PAYLOAD = 65507


class SyslogTargetError(SevenfoldError):
    """The syslog target is not ``udp://HOST:PORT`` or ``tcp://HOST:PORT``, or is unreachable."""

    code = "bad-syslog-target"


def _header_token(text: str) -> str:
    """RFC 5424 header fields are printable US-ASCII without spaces, or '-' when empty."""
    cleaned = "".join(c for c in text if 33 <= ord(c) <= 126)
    return cleaned or "-"


def rfc5424(
    message: str,
    *,
    severity: str,
    ts: float,
    hostname: str,
    procid: str,
    app_name: str = APP_NAME,
    msgid: str = MSGID,
    facility: int = FACILITY_LOCAL0,
) -> bytes:
    """One RFC 5424 message; the timestamp is the event's own time, in UTC with milliseconds."""
    pri = facility * 8 + SYSLOG_SEVERITY[severity]
    stamp = datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
    head = (
        f"<{pri}>1 {stamp}Z {_header_token(hostname)[:255]} {_header_token(app_name)[:48]} "
        f"{_header_token(procid)[:128]} {_header_token(msgid)[:32]} -"
    )
    return f"{head} {message}".encode()


def octet_counted(frame: bytes) -> bytes:
    """RFC 6587 octet-counting framing for a stream transport."""
    return str(len(frame)).encode() + b" " + frame


def parse_target(url: str) -> tuple[str, str, int]:
    """``udp://HOST:PORT`` or ``tcp://HOST:PORT`` -> (transport, host, port)."""
    parts = urlsplit(url)
    if parts.scheme not in ("udp", "tcp"):
        raise SyslogTargetError(f"{url!r}: scheme must be udp or tcp")
    try:
        port = parts.port
    except ValueError as exc:
        raise SyslogTargetError(f"{url!r}: bad port") from exc
    if not parts.hostname or port is None or parts.path not in ("", "/"):
        raise SyslogTargetError(f"{url!r}: expected {parts.scheme}://HOST:PORT")
    return parts.scheme, parts.hostname, port


class SyslogSender:
    """Sends RFC 5424 messages to one collector; TCP reconnects once on a broken stream."""

    def __init__(self, url: str, *, hostname: str | None = None, procid: str | None = None) -> None:
        self.transport, self.host, self.port = parse_target(url)
        self.hostname = hostname if hostname is not None else socket.gethostname()
        self.procid = procid if procid is not None else str(os.getpid())
        self._sock: socket.socket | None = None
        self.sent = 0

    def __enter__(self) -> SyslogSender:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _connect(self) -> socket.socket:
        if self._sock is None:
            try:
                if self.transport == "udp":
                    info = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_DGRAM)[0]
                    sock = socket.socket(info[0], socket.SOCK_DGRAM)
                    sock.connect(info[4])
                else:
                    sock = socket.create_connection((self.host, self.port), timeout=5.0)
            except OSError as exc:
                raise SyslogTargetError(
                    f"{self.transport}://{self.host}:{self.port}: {exc}"
                ) from exc
            self._sock = sock
        return self._sock

    def send(self, message: str, *, severity: str, ts: float) -> None:
        frame = rfc5424(
            message, severity=severity, ts=ts, hostname=self.hostname, procid=self.procid
        )
        if self.transport == "udp":
            self._connect().send(frame[:MAX_UDP_PAYLOAD])
        else:
            payload = octet_counted(frame)
            try:
                self._connect().sendall(payload)
            except OSError:
                self.close()
                try:
                    self._connect().sendall(payload)
                except OSError as exc:
                    raise SyslogTargetError(f"tcp://{self.host}:{self.port}: {exc}") from exc
        self.sent += 1

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
