"""The CSR check, device half: ``main([KIND])`` makes and prints one backend's request.

Each backend runs in a MicroPython process of its own, at 64 KiB, its bytecode in a
ROMFS image outside the heap as on a board's flash (``flash_launcher.py``). Parsing a
request back and verifying its signature on the device needs about 72 KiB
beside a backend and the curve code, and a device never does it: its CSR is
read by the factory. So the device checks what it can with the encoder it
already holds (the request is one DER SEQUENCE naming the device and carrying
its identity key; bad names are refused) and prints the request;
``test_conformance_csr_host.py`` runs this module under MicroPython and
verifies every printed request with ``cryptography``, as a factory does.
"""

import gc

from device_runtime.core import der, p256  # noqa: F401  (loaded first, while the heap is whole)
from tests.device_runtime.refusal import refused
from tests.device_runtime.rot.backends import Backend

PORTABLE_HELPER = True
COMMON_NAME = "device-0042"
MARK = "CSR-FROM-DEVICE"


def make_and_print_csr(kind: str) -> None:
    gc.collect()  # the curve code's tables need contiguous room
    backend = Backend(kind)
    try:
        rot = backend.open("a")
        request = rot.csr(COMMON_NAME)
        point = rot.identity_key().public_key()
        assert request[0] == der.SEQUENCE
        assert der.name((der.OID_COMMON_NAME, COMMON_NAME)) in request
        assert der.ec_public_key_info(point) in request
        for bad in ("", "x" * 65, 5, None, b"device"):
            refused(rot.csr, bad)
        del rot
        gc.collect()
        print(MARK, kind, point.hex())
        for start in range(0, len(request), 32):
            print(MARK, kind, request[start : start + 32].hex())
    finally:
        backend.close()


def main(args: "list[str]") -> None:
    """``flash_launcher.py``'s entry: the request of the backend named first in *args*."""
    make_and_print_csr(args[0])
