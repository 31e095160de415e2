# MicroPython's ``ssl`` (over mbedTLS): credentials are DER bytes, sockets are streams.
# https://docs.micropython.org/en/latest/library/ssl.html

import socket

CERT_NONE: int
CERT_OPTIONAL: int
CERT_REQUIRED: int
PROTOCOL_TLS_CLIENT: int
PROTOCOL_TLS_SERVER: int

class SSLSocket:
    def read(self, n: int = ..., /) -> bytes | None: ...
    def readinto(self, buf: bytearray | memoryview, n: int = ..., /) -> int | None: ...
    def write(self, buf: bytes | bytearray | memoryview, /) -> int | None: ...
    def setblocking(self, flag: bool, /) -> None: ...
    def close(self) -> None: ...

class SSLContext:
    verify_mode: int
    def __init__(self, protocol: int, /) -> None: ...
    def load_cert_chain(self, certfile: bytes, keyfile: bytes, /) -> None: ...
    def load_verify_locations(
        self, cafile: str | None = None, cadata: bytes | None = None
    ) -> None: ...
    def wrap_socket(
        self,
        sock: socket.socket,
        *,
        server_side: bool = False,
        do_handshake_on_connect: bool = True,
        server_hostname: str | None = None,
    ) -> SSLSocket: ...
