"""The conformance suite's CSR check on every portable backend, on CPython.

Under MicroPython the same check runs split in two: see conformance_csr.py.
"""

from tests.device_runtime.rot.backends import on_every_backend
from tests.device_runtime.rot.conformance_csr import check_csr_der


def test_csr() -> None:
    on_every_backend(check_csr_der)
