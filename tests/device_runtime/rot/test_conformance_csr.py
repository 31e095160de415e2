"""The conformance suite's CSR check on every portable backend, on CPython.

Not PORTABLE yet: see conformance_csr.py for the heap it needs under MicroPython.
"""

from tests.device_runtime.rot.backends import on_every_backend
from tests.device_runtime.rot.conformance_csr import check_csr_der


def test_csr() -> None:
    on_every_backend(check_csr_der)
