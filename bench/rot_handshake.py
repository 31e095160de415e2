"""Timed mutual-TLS sessions to the broker, one after another (run by bench/bench_rot.py).

    python -m bench.rot_handshake HOST PORT CA CERT KEY CLIENT_ID COUNT

Loads the key once (a PEM file, or a TSS2 PRIVATE KEY when the process was
started with ``device_runtime.ports.cpython.tpm_tls.environment()``), then
COUNT times: TCP connect, full TLS handshake (no session resumption), MQTT
CONNECT, wait for CONNACK (the broker has checked the client certificate by
then), DISCONNECT. Prints one JSON object: milliseconds per session to the end
of the client's handshake and to CONNACK, and the key-loading time.
"""

from __future__ import annotations

import json
import socket
import ssl
import sys
import time


def _connect_packet(client_id: str) -> bytes:
    ident = client_id.encode()
    body = b"\x00\x04MQTT\x04\x02\x00\x1e" + len(ident).to_bytes(2, "big") + ident
    return bytes([0x10, len(body)]) + body


def _connack(tls: ssl.SSLSocket) -> bytes:
    reply = b""
    while len(reply) < 4:
        chunk = tls.recv(4 - len(reply))
        if not chunk:
            raise SystemExit("the broker closed the connection before CONNACK")
        reply += chunk
    return reply


def main(host: str, port: str, ca: str, cert: str, key: str, client_id: str, count: str) -> None:
    start = time.perf_counter()
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile=cert, keyfile=key)
    load_ms = (time.perf_counter() - start) * 1000
    packet = _connect_packet(client_id)
    handshake_ms: list[float] = []
    connack_ms: list[float] = []
    version = ""
    for _ in range(int(count)):
        start = time.perf_counter()
        with socket.create_connection((host, int(port)), timeout=30) as raw:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with context.wrap_socket(raw, server_hostname=host) as tls:
                handshake_ms.append((time.perf_counter() - start) * 1000)
                tls.sendall(packet)
                reply = _connack(tls)
                connack_ms.append((time.perf_counter() - start) * 1000)
                if reply[:2] != b"\x20\x02" or reply[3] != 0:
                    raise SystemExit(f"the broker refused the session: {reply.hex()}")
                version = tls.version() or ""
                tls.sendall(b"\xe0\x00")
    print(
        json.dumps(
            {
                "load_key_ms": load_ms,
                "handshake_ms": handshake_ms,
                "connack_ms": connack_ms,
                "tls_version": version,
            }
        )
    )


if __name__ == "__main__":
    main(*sys.argv[1:8])
