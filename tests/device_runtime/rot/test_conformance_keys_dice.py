"""The conformance suite's key checks on the DICE root of trust (CPython for now).

Not PORTABLE yet: under MicroPython at 64 KiB the DICE key checks run out of
heap in about one run in three (it depends on the random UDS: big-integer
sizes and heap fragmentation), while the software backend's
(test_conformance_keys_software.py) pass every time. The signing path is the
same code for both (DerivedKey -> the port's sign_es256).
"""

from tests.device_runtime.rot import conformance_keys as checks
from tests.device_runtime.rot.backends import on_every_backend

KINDS = ("dice",)


def test_kind():
    on_every_backend(checks.check_kind, KINDS)


def test_keys_stay_the_same_across_reopen():
    on_every_backend(checks.check_keys_stable_across_reopen, KINDS)


def test_firmware_measurement_moves_the_alias_key_only():
    on_every_backend(checks.check_firmware_measurement, KINDS)


def test_keys_sign_es256():
    on_every_backend(checks.check_keys_sign_es256, KINDS)
