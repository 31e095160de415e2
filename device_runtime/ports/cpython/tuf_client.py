"""The TUF client command (``core/tuf/client_command``) on CPython: OpenSSL for P-256.

``python -m device_runtime.ports.cpython.tuf_client [options] init|refresh|download``;
``scripts/tuf-client-cpython`` runs it for the TUF conformance suite.
"""

from __future__ import annotations

import sys

from device_runtime.core.http_client import http_get
from device_runtime.core.tuf.client_command import run
from device_runtime.core.tuf.updater import Limits
from device_runtime.ports.cpython import crypto
from device_runtime.ports.cpython.clock import SystemClock

LIMITS = Limits(root=512_000, timestamp=16_384, snapshot=2_000_000, targets=5_000_000)
"""python-tuf's own limits: a CPython host has the memory to parse documents that large."""


def main(argv: list[str]) -> int:
    return run(
        argv,
        fetcher=http_get,
        crypto=crypto,
        clock=SystemClock(),
        limits=LIMITS,
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
