"""The conformance suite's certificate-chain check on every portable root of trust (CPython).

Not PORTABLE: on DICE the check issues an Alias certificate, which with the
suite's own helpers does not fit a 64 KiB MicroPython heap whose bytecode is
in RAM (the unix port's). Under MicroPython the chain is built and checked as
part of a whole token, in ``test_evidence_under_micropython.py``, which states
the heap it needs.
"""

from tests.device_runtime.rot import conformance_keys as checks
from tests.device_runtime.rot.backends import on_every_backend


def test_certificate_chain_ends_with_the_deviceid_certificate() -> None:
    on_every_backend(checks.check_certificate_chain)
