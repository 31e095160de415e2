"""The TUF client command (``core/tuf/client_command``) on MicroPython: the core's P-256.

Run from a ROMFS image by ``scripts/tuf-client-micropython``; ``main`` exits
with the command's status.
"""

import sys

from device_runtime.core.http_client import http_get
from device_runtime.core.tuf.client_command import run
from device_runtime.ports.micropython import crypto
from device_runtime.ports.micropython.clock import SystemClock

TYPE_CHECKING = False
if TYPE_CHECKING:
    from upy import gc
else:
    import gc


def main(argv: "list[str]") -> None:
    # Collect often: a heap this small fails on fragmentation before it runs out of bytes.
    gc.threshold(4096)
    sys.exit(
        run(
            argv,
            fetcher=http_get,
            crypto=crypto,
            clock=SystemClock(),
        )
    )
