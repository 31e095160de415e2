"""Live capture from a network interface through a Linux AF_PACKET socket.

A sensor on a SPAN port must not load a capture library or transmit anything,
so it opens a raw packet socket (root or CAP_NET_RAW) and only reads. The
socket times out twice a second so that a caller's stop event is honoured even
on a silent link.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

from passive_monitor.capture.errors import CaptureError

ETH_P_ALL = 0x0003
LINKTYPE_ETHERNET = 1
PACKET_OUTGOING = 4
ARPHRD_LOOPBACK = 772
MAX_FRAME = 65_535 + 18
POLL_SECONDS = 0.5


def read_interface(
    name: str, *, stop: threading.Event | None = None
) -> Iterator[tuple[float, int, bytes]]:
    """Yield ``(ts, linktype, frame)`` for frames seen on *name* until *stop* is set.

    On loopback the kernel shows every frame twice (as sent and as received);
    the sent copy is dropped there so each packet is observed once.
    """
    if not hasattr(socket, "AF_PACKET"):
        raise CaptureError("live capture needs Linux AF_PACKET sockets")
    try:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    except OSError as exc:
        raise CaptureError(f"cannot open a packet socket: {exc}") from exc
    with sock:
        try:
            sock.bind((name, 0))
        except OSError as exc:
            raise CaptureError(f"cannot capture on {name!r}: {exc}") from exc
        sock.settimeout(POLL_SECONDS)
        while stop is None or not stop.is_set():
            try:
                frame, address = sock.recvfrom(MAX_FRAME)
            except TimeoutError:
                continue
            except OSError as exc:
                raise CaptureError(f"capture on {name!r} failed: {exc}") from exc
            if address[2] == PACKET_OUTGOING and address[3] == ARPHRD_LOOPBACK:
                continue
            yield time.time(), LINKTYPE_ETHERNET, frame
