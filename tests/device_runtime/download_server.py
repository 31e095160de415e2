"""A real HTTP server on a free loopback port that serves files with ranges and misbehaves on cue.

It answers ``GET`` with 200, or 206 for ``Range: bytes=N-`` (416 past the end),
as a static file server or CDN does, and counts the body bytes it writes. Each
request takes the next fault from ``faults`` (none once they run out):

``drop:K``      send the head and K body bytes, then close the connection
``status:C``    answer status C with an empty body (a 503, a 404, a 416)
``ignore-range`` answer 200 with the whole file whatever was asked
``shifted``     answer 206 starting a byte before the offset asked
``stall:S``     send the head, then nothing for S seconds (the client times out)
``short``       answer 206 but claim a total one byte longer than the file

Also the server half of the download tests under MicroPython. CPython only.
"""

from __future__ import annotations

import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

RANGE = re.compile(r"^bytes=(\d+)-$")


class DownloadServer:
    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.faults: list[str] = []
        self.served = 0
        self.requests: list[tuple[str, int | None, str]] = []
        """(path, the range's first byte or None, the fault applied) per request."""
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                owner.answer(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> DownloadServer:
        self.thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def answer(self, handler: BaseHTTPRequestHandler) -> None:
        with self.lock:
            fault = self.faults.pop(0) if self.faults else ""
        path = handler.path
        asked = RANGE.match(handler.headers.get("Range", ""))
        start = int(asked.group(1)) if asked else None
        self.requests.append((path, start, fault))
        data = self.files.get(path)
        if data is None or fault.startswith("status:"):
            self._head(handler, int(fault[7:]) if fault else 404, 0)
            return
        total = len(data)
        if start is not None and fault != "ignore-range":
            if start >= total:
                self._head(handler, 416, 0, {"Content-Range": f"bytes */{total}"})
                return
            first = max(start - 1, 0) if fault == "shifted" else start
            claimed = total + 1 if fault == "short" else total
            body = data[first:]
            ranged = {"Content-Range": f"bytes {first}-{total - 1}/{claimed}"}
            self._head(handler, 206, len(body), ranged)
        else:
            body = data
            self._head(handler, 200, total)
        if fault.startswith("stall:"):
            time.sleep(float(fault[6:]))
            return
        if fault.startswith("drop:"):
            body = body[: int(fault[5:])]
        try:
            handler.wfile.write(body)
            handler.wfile.flush()
        except OSError:
            return
        with self.lock:
            self.served += len(body)
        handler.close_connection = True

    def _head(
        self,
        handler: BaseHTTPRequestHandler,
        status: int,
        length: int,
        headers: dict[str, str] | None = None,
    ) -> None:
        handler.send_response(status)
        handler.send_header("Content-Length", str(length))
        handler.send_header("Accept-Ranges", "bytes")
        handler.send_header("Connection", "close")
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.close_connection = True
