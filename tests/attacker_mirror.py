"""An attacker's mirror of a TUF repository: a real loopback HTTP server, and the forgeries.

:class:`AttackerMirror` serves a copy of a repository directory (``metadata/``
and ``targets/``) as any static mirror or CDN would (it is
``tests/device_runtime/download_server``'s server), and the test then changes
what it serves: a file replaced by other bytes, removed, or answered with an
endless body (:meth:`AttackerMirror.endless`). A board whose repository URL
points here (``install_update_trust``) gets whatever the attacker chose.

:func:`forge` is what an attacker holding a key does with a document: edit
its signed part and sign it again, with python-tuf's Metadata API. Keys come
from where the test got them: the server's online keys (a compromise), one
of the offline root keys, or keys the attacker made.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import Metadata
from tuf.api.serialization.json import JSONSerializer

from tests.device_runtime.download_server import DownloadServer

ANNOUNCED = "announced"
"""An endless body that says so: ``Content-Length`` of a terabyte."""
CHUNKED = "chunked"
"""An endless body that does not: chunks that never end."""

CHUNK = 64 * 1024
ENDLESS_CAP = 64 * 1024 * 1024
"""Where an "endless" body stops, so that a client which buffered it fails its test
rather than hanging it: far past any limit a device has."""


def repository_files(directory: Path) -> dict[str, bytes]:
    """Every file under *directory* by the URL path it is served at (``/metadata/...``)."""
    return {
        "/" + path.relative_to(directory).as_posix(): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def forge(
    data: bytes,
    signers: list[CryptoSigner],
    edit: Callable[[Any], None] = lambda signed: None,
    *,
    version: int | None = None,
    expires: datetime | None = None,
) -> bytes:
    """*data* (a metadata document) with its signed part edited and signed by *signers* alone;
    *version* and *expires* set when given (by default a day from now, as the service would)."""
    md: Metadata[Any] = Metadata.from_bytes(data)
    edit(md.signed)
    if version is not None:
        md.signed.version = version
    md.signed.expires = expires or (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    md.signatures.clear()
    for signer in signers:
        md.sign(signer, append=True)
    return md.to_bytes(JSONSerializer(compact=True))


class AttackerMirror(DownloadServer):
    """A mirror the attacker controls; :attr:`files` is what it serves, by URL path."""

    def __init__(self) -> None:
        super().__init__({})
        self.bodies: dict[str, str] = {}
        """Paths answered with an endless body, and how (:data:`ANNOUNCED`, :data:`CHUNKED`)."""
        self.endless_sent = 0
        """Bytes of endless bodies written before the client hung up."""
        self.endless_done = threading.Event()

    def serve(self, files: dict[str, bytes]) -> None:
        """Serve a copy of *files* from now on, and forget what was requested before."""
        with self.lock:
            self.files = dict(files)
            self.bodies = {}
            self.requests.clear()
            self.endless_sent = 0
            self.endless_done.clear()

    def endless(self, path: str, how: str) -> None:
        self.bodies[path] = how

    def requested(self, prefix: str) -> list[str]:
        return [path for path, _, _ in self.requests if path.startswith(prefix)]

    def answer(self, handler: BaseHTTPRequestHandler) -> None:
        how = self.bodies.get(handler.path)
        if how is None:
            super().answer(handler)
            return
        self.requests.append((handler.path, None, how))
        handler.send_response(200)
        if how == ANNOUNCED:
            handler.send_header("Content-Length", str(1 << 40))
        else:
            handler.send_header("Transfer-Encoding", "chunked")
        handler.send_header("Connection", "close")
        handler.end_headers()
        handler.close_connection = True
        piece = b"\x00" * CHUNK
        framed = piece if how == ANNOUNCED else b"%x\r\n%s\r\n" % (CHUNK, piece)
        try:
            while self.endless_sent < ENDLESS_CAP:
                handler.wfile.write(framed)
                self.endless_sent += CHUNK
        except OSError:
            pass  # the client hung up: what an endless body should come to
        finally:
            self.endless_done.set()
