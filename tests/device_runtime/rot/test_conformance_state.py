"""The conformance suite's state checks on every portable root of trust (software, DICE).

PORTABLE: runs under pytest and under MicroPython at 64 KiB
(tests/device_runtime/test_under_micropython.py); the key checks are in
test_conformance_keys.py (portable too) and test_conformance_csr.py (CPython for now).
"""

from tests.device_runtime.rot import conformance_state as checks
from tests.device_runtime.rot.backends import on_every_backend

PORTABLE = True


def test_measurement_registers():
    on_every_backend(checks.check_measurements)


def test_measurements_restart_at_zero_with_every_boot():
    on_every_backend(checks.check_measurements_restart_at_boot)


def test_counters_only_go_up_and_persist():
    on_every_backend(checks.check_counters)


def test_damaged_counter_records_are_refused():
    on_every_backend(checks.check_counters_refused_when_damaged)


def test_sealing():
    on_every_backend(checks.check_sealing)


def test_sealing_is_bound_to_the_firmware():
    on_every_backend(checks.check_sealing_bound_to_firmware)


def test_random_bytes():
    on_every_backend(checks.check_random_bytes)
