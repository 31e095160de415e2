"""The conformance suite's key checks on the software root of trust.

PORTABLE, like test_conformance_state.py; one module per backend because
under MicroPython the curve code and one backend fill most of a 64 KiB heap.
"""

from tests.device_runtime.rot import conformance_keys as checks
from tests.device_runtime.rot.backends import on_every_backend

PORTABLE = True
KINDS = ("software",)


def test_kind():
    on_every_backend(checks.check_kind, KINDS)


def test_keys_stay_the_same_across_reopen():
    on_every_backend(checks.check_keys_stable_across_reopen, KINDS)


def test_keys_sign_es256():
    on_every_backend(checks.check_keys_sign_es256, KINDS)


def test_firmware_measurement_moves_the_alias_key_only():
    on_every_backend(checks.check_firmware_measurement, KINDS)
