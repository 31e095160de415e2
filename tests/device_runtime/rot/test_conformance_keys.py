"""The conformance suite's key checks on every portable root of trust (software, DICE).

PORTABLE: runs under pytest and under MicroPython at 64 KiB
(tests/device_runtime/test_under_micropython.py), where they fit every time,
whatever the random seed or UDS, because the curve code's tables are single
small buffers and each window table entry is made affine on its own (see
``device_runtime/core/p256_points.py``). The CSR check is in
test_conformance_csr.py (CPython) and, under MicroPython, split in a device
half (csr_on_device.py) and a host half (test_conformance_csr_host.py).
"""

from tests.device_runtime.rot import conformance_keys as checks
from tests.device_runtime.rot.backends import on_every_backend

PORTABLE = True


def test_kind():
    on_every_backend(checks.check_kind)


def test_keys_stay_the_same_across_reopen():
    on_every_backend(checks.check_keys_stable_across_reopen)


def test_keys_sign_es256():
    on_every_backend(checks.check_keys_sign_es256)


def test_firmware_measurement_moves_the_alias_key_only():
    on_every_backend(checks.check_firmware_measurement)


def test_evidence_key_signs_es256():
    on_every_backend(checks.check_evidence_key_signs_es256)
