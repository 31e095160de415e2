"""One MQTT 3.1.1 session over one TLS socket, for MicroPython.

After the handshake the socket is non-blocking and every wait goes through
``select.poll`` with a deadline, so no broker behaviour can hang the device:
a silent broker is a ``TransportError`` after ``timeout_ms``, never a stuck
``read``. Polling the TLS object rather than the raw socket matters: mbedTLS
may already hold decrypted bytes that the raw socket no longer shows.

Messages that arrive while the client waits for a PUBACK or SUBACK are
acknowledged and queued for the next ``poll``, up to ``INBOX_LIMIT``; a broker
flooding past that breaks the session rather than the heap. An acknowledgement
for a wait that already timed out is dropped, because the caller has been told.

Errors are raised ``from None`` with the cause folded into the reason:
MicroPython does not chain exceptions and warns on stderr when asked to.
"""

import errno
import socket

from device_runtime.core.errors import TransportError
from device_runtime.ports.micropython import mqtt_packet as mp

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TypeVar

    from upy import select, ssl, time

    from device_runtime.ports.micropython.mqtt_packet import Body

    Decoded = TypeVar("Decoded")
else:
    import select
    import time

INBOX_LIMIT = 8
DEFAULT_TIMEOUT_MS = 10000


def _reason(exc: BaseException) -> str:
    """An exception as one line: mbedTLS wraps its text in newlines, OSError is a bare int."""
    args = exc.args
    if isinstance(exc, OSError) and len(args) == 1 and isinstance(args[0], int):
        return (errno.errorcode.get(args[0]) or "errno") + " " + str(args[0])
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _one_suback_code(body: "Body") -> "tuple[int, bytes]":
    """SUBACK for a one-filter SUBSCRIBE: anything but exactly one code breaks the protocol."""
    packet_id, codes = mp.decode_suback(body)
    if len(codes) != 1:
        raise TransportError("SUBACK holds " + str(len(codes)) + " codes for one filter")
    return packet_id, codes


class MqttClient:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        client_id: str,
        context: "ssl.SSLContext",
        server_hostname: str,
        keepalive: int = 60,
        max_packet: int = 65536,
        timeout_ms: int = DEFAULT_TIMEOUT_MS,
    ) -> None:
        self.host = host
        self.port = port
        self.client_id = client_id
        self.server_hostname = server_hostname
        self.keepalive = keepalive
        self.max_packet = max_packet
        self.timeout_ms = timeout_ms
        self._context = context
        self._tls: "ssl.SSLSocket | None" = None
        self._poller: "select.poll | None" = None
        self._next_id = 0
        self._inbox: "list[tuple[str, bytes]]" = []
        self._last_sent = 0
        self._ping_sent: "int | None" = None
        self._began = False

    @property
    def connected(self) -> bool:
        """False before connect and after any failure, which always drops the socket."""
        return self._tls is not None

    def connect(self) -> None:
        """Open TCP and TLS, send CONNECT and insist on an accepting CONNACK."""
        if self._tls is not None:
            raise TransportError("already connected")
        try:
            family, kind, proto, _, address = socket.getaddrinfo(
                self.host, self.port, 0, socket.SOCK_STREAM
            )[0]
            raw = socket.socket(family, kind, proto)
        except OSError as exc:
            raise TransportError(
                "cannot resolve broker " + self.host + ": " + _reason(exc)
            ) from None
        try:
            raw.settimeout(self.timeout_ms / 1000)
            raw.connect(address)
        except OSError as exc:
            raw.close()
            raise TransportError(
                "cannot reach broker at " + self.host + ":" + str(self.port) + ": " + _reason(exc)
            ) from None
        try:
            tls = self._context.wrap_socket(raw, server_hostname=self.server_hostname)
        except (OSError, ValueError) as exc:
            raw.close()
            raise TransportError("TLS handshake with the broker failed: " + _reason(exc)) from None
        raw.setblocking(False)
        poller = select.poll()
        poller.register(tls, select.POLLIN)
        self._tls = tls
        self._poller = poller
        try:
            self._send(mp.encode_connect(self.client_id, self.keepalive))
            ptype, _, body = self._next_packet(self.timeout_ms, "CONNACK")
            if ptype != mp.CONNACK:
                raise TransportError("expected CONNACK, got " + mp.NAMES[ptype])
            _, code = mp.decode_connack(body)
            if code != 0:
                raise TransportError("broker refused the connection: " + mp.refusal_reason(code))
        except TransportError:
            self._drop()
            raise

    def publish(self, topic: str, payload: bytes) -> None:
        """QoS 1 publish; returns once the broker's PUBACK for it arrived."""
        packet_id = self._packet_id()
        packet = mp.encode_publish(topic, payload, qos=1, packet_id=packet_id)
        self._check_size(packet, "PUBLISH")
        self._send(packet)
        self._await(mp.PUBACK, packet_id, "PUBACK for " + topic, mp.decode_puback)

    def subscribe(self, topic: str) -> None:
        """QoS 1 subscription; a refusal (SUBACK 0x80, e.g. by ACL) is an error, not a no-op."""
        packet_id = self._packet_id()
        packet = mp.encode_subscribe(packet_id, topic, qos=1)
        self._check_size(packet, "SUBSCRIBE")
        self._send(packet)
        _, codes = self._await(mp.SUBACK, packet_id, "SUBACK for " + topic, _one_suback_code)
        if codes[0] == mp.SUBACK_FAILURE:
            raise TransportError("broker refused the subscription to " + topic)

    def poll(self, timeout_ms: int) -> "tuple[str, bytes] | None":
        """Next (topic, payload) within *timeout_ms*, or None; keeps the session alive meanwhile."""
        self._link()
        if not isinstance(timeout_ms, int) or isinstance(timeout_ms, bool):
            raise TransportError("poll timeout must be an int of milliseconds")
        deadline = time.ticks_add(time.ticks_ms(), max(0, timeout_ms))
        while True:
            if self._inbox:
                return self._inbox.pop(0)
            self._keep_alive()
            remaining = time.ticks_diff(deadline, time.ticks_ms())
            if remaining <= 0:
                return None
            wait = min(remaining, self._ms_until_ping())
            if self._readable(wait):
                self._handle(*self._next_packet(self.timeout_ms, "the next packet"))

    def close(self) -> None:
        """Send DISCONNECT so the broker ends the session cleanly, then close the socket."""
        if self._tls is None:
            return
        try:
            self._send(mp.encode_disconnect())
        except TransportError:
            # The link is already gone; all that is left is releasing the socket.
            pass
        self._drop()

    def _drop(self) -> None:
        tls = self._tls
        self._tls = None
        self._poller = None
        self._inbox = []
        self._ping_sent = None
        if tls is not None:
            try:
                tls.close()
            except OSError:
                # Closing a reset socket can fail; it is released either way.
                pass

    def _link(self) -> "tuple[ssl.SSLSocket, select.poll]":
        """The TLS stream and its poller, while connected."""
        if self._tls is None or self._poller is None:
            raise TransportError("not connected")
        return self._tls, self._poller

    def _packet_id(self) -> int:
        self._next_id = self._next_id % 0xFFFF + 1
        return self._next_id

    def _check_size(self, packet: bytes, name: str) -> None:
        if len(packet) > self.max_packet:
            raise TransportError(
                name
                + " of "
                + str(len(packet))
                + " bytes is over the "
                + str(self.max_packet)
                + "-byte limit"
            )

    def _ms_until_ping(self) -> int:
        """Time left before keepalive needs attention; pinging at 3/4 leaves room for a late poll.

        With a PINGREQ outstanding, it is the time left for its PINGRESP instead.
        """
        if self._ping_sent is not None:
            return max(0, self.timeout_ms - time.ticks_diff(time.ticks_ms(), self._ping_sent))
        if self.keepalive == 0:
            return 1 << 29
        due = self.keepalive * 750
        return max(0, due - time.ticks_diff(time.ticks_ms(), self._last_sent))

    def _keep_alive(self) -> None:
        if self._ping_sent is not None:
            if time.ticks_diff(time.ticks_ms(), self._ping_sent) >= self.timeout_ms:
                self._drop()
                raise TransportError("no PINGRESP from the broker in time")
            return
        if self.keepalive and self._ms_until_ping() <= 0:
            self._send(mp.encode_pingreq())
            self._ping_sent = time.ticks_ms()

    def _await(
        self, ptype: int, packet_id: int, what: str, decode: "Callable[[Body], Decoded]"
    ) -> "Decoded":
        """Decoded acknowledgement for *packet_id*, handling whatever else arrives first."""
        self._link()
        deadline = time.ticks_add(time.ticks_ms(), self.timeout_ms)
        while True:
            remaining = time.ticks_diff(deadline, time.ticks_ms())
            if remaining <= 0 or not self._readable(remaining):
                raise TransportError("no " + what + " within " + str(self.timeout_ms) + " ms")
            got, flags, body = self._next_packet(self.timeout_ms, what)
            if got == ptype and len(body) >= 2 and ((body[0] << 8) | body[1]) == packet_id:
                try:
                    return decode(body)
                except TransportError:
                    self._drop()
                    raise
            self._handle(got, flags, body)

    def _handle(self, ptype: int, flags: int, body: "Body") -> None:
        try:
            self._dispatch(ptype, flags, body)
        except TransportError:
            self._drop()
            raise

    def _dispatch(self, ptype: int, flags: int, body: "Body") -> None:
        """Handle a packet nobody is waiting for."""
        if ptype == mp.PUBLISH:
            topic, payload, qos, packet_id = mp.decode_publish(flags, body)
            if qos == 2:
                raise TransportError("QoS 2 PUBLISH though no subscription asked for QoS 2")
            if len(self._inbox) >= INBOX_LIMIT:
                raise TransportError("over " + str(INBOX_LIMIT) + " messages queued unread")
            if qos == 1:
                self._send(mp.encode_puback(packet_id))
            self._inbox.append((topic, payload))
        elif ptype == mp.PINGRESP:
            mp.decode_pingresp(body)
            self._ping_sent = None
        elif ptype == mp.PUBACK:
            mp.decode_puback(body)
        elif ptype == mp.SUBACK:
            mp.decode_suback(body)
        else:
            raise TransportError("unexpected " + mp.NAMES[ptype] + " from the broker")

    def _readable(self, wait_ms: int) -> bool:
        _, poller = self._link()
        try:
            events = poller.poll(wait_ms)
        except OSError as exc:
            self._drop()
            raise TransportError("waiting on the broker failed: " + _reason(exc)) from None
        for _, event in events:
            if event & (select.POLLERR | select.POLLHUP) and not event & select.POLLIN:
                self._drop()
                raise TransportError("connection to the broker was lost")
        return bool(events)

    def _next_packet(self, timeout_ms: int, what: str) -> "tuple[int, int, Body]":
        """Read one whole packet; once its first byte is in, the rest must follow in time."""
        deadline = time.ticks_add(time.ticks_ms(), timeout_ms)
        self._began = False

        def read(n: int) -> "Body":
            return self._read_exact(n, deadline, what)

        try:
            return mp.read_packet(read, self.max_packet)
        except TransportError:
            self._drop()
            raise

    def _read_exact(self, n: int, deadline: int, what: str) -> "Body":
        try:
            buf = bytearray(n)
        except MemoryError:
            raise TransportError(
                "no heap for " + str(n) + " bytes of " + what + "; lower max_packet"
            ) from None
        tls, poller = self._link()
        view = memoryview(buf)
        got = 0
        while got < n:
            try:
                count = tls.readinto(view[got:])
            except OSError as exc:
                raise TransportError("reading from the broker failed: " + _reason(exc)) from None
            if count is None:
                remaining = time.ticks_diff(deadline, time.ticks_ms())
                if remaining <= 0 or not poller.poll(remaining):
                    raise TransportError("timed out reading " + what + " from the broker")
                continue
            if count == 0:
                if not self._began:
                    raise TransportError(
                        "broker closed the connection while awaiting "
                        + what
                        + " (a refused client certificate ends this way)"
                    )
                return bytes(buf[:got])
            got += count
            self._began = True
        return buf

    def _send(self, data: bytes) -> None:
        tls, _ = self._link()
        view = memoryview(data)
        sent = 0
        deadline = time.ticks_add(time.ticks_ms(), self.timeout_ms)
        poller = select.poll()
        poller.register(tls, select.POLLOUT)
        while sent < len(data):
            try:
                count = tls.write(view[sent:])
            except OSError as exc:
                self._drop()
                raise TransportError("writing to the broker failed: " + _reason(exc)) from None
            if count is None or count == 0:
                remaining = time.ticks_diff(deadline, time.ticks_ms())
                if remaining <= 0 or not poller.poll(remaining):
                    self._drop()
                    raise TransportError("timed out writing to the broker")
                continue
            sent += count
        self._last_sent = time.ticks_ms()
