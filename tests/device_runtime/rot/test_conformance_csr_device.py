"""The CSR check, device half: each portable backend makes its CSR under MicroPython at 64 KiB.

PORTABLE. Parsing a request back and verifying its signature on the device
needs about 72 KiB beside a backend and the curve code, and a device never
does it: its CSR is read by the factory. So the device checks what it can
with the encoder it already holds (the request is one DER SEQUENCE naming the
device and carrying its identity key; bad names are refused) and prints the
request; ``test_conformance_csr_host.py`` runs this module under MicroPython
and verifies every printed request with ``cryptography``, as a factory does.
"""

from device_runtime.core import der, p256  # noqa: F401  (loaded first, while the heap is whole)
from tests.device_runtime.rot.backends import Backend, refused

PORTABLE = True
COMMON_NAME = "device-0042"
MARK = "CSR-FROM-DEVICE"


def _check(kind: str) -> None:
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
        print(MARK, kind, point.hex(), request.hex())
    finally:
        backend.close()


def test_the_software_backend_makes_a_csr_for_its_identity_key() -> None:
    _check("software")


def test_the_dice_backend_makes_a_csr_for_its_identity_key() -> None:
    _check("dice")
