"""The conformance suite's key checks on every portable root of trust (CPython for now).

Not PORTABLE yet: under MicroPython at 64 KiB a backend, the curve code and
the test harness leave so little heap that these checks run out of it in
about one run in five (it depends on the random seed or UDS: big-integer
sizes and heap fragmentation); they pass every time from about 72 KiB. The
state checks (test_conformance_state.py) do run there, and the signer itself
is checked under MicroPython by tests/device_runtime/core/test_p256.py.
"""

from tests.device_runtime.rot import conformance_keys as checks
from tests.device_runtime.rot.backends import on_every_backend


def test_kind() -> None:
    on_every_backend(checks.check_kind)


def test_keys_stay_the_same_across_reopen() -> None:
    on_every_backend(checks.check_keys_stable_across_reopen)


def test_keys_sign_es256() -> None:
    on_every_backend(checks.check_keys_sign_es256)


def test_firmware_measurement_moves_the_alias_key_only() -> None:
    on_every_backend(checks.check_firmware_measurement)
