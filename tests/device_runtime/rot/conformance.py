"""The root-of-trust contract as checks any backend can be run through.

Each ``check_*`` function takes a backend (see ``backends.py`` for the shape:
``kind``, ``open(device, firmware)``, ``store(device)``, ``firmware_bound``)
and raises AssertionError when the backend breaks the contract of
``device_runtime/rot/__init__.py``. Plain code and ``assert`` only, so the same
checks run under pytest on CPython and under MicroPython at 64 KiB (split over
``conformance_keys`` and ``conformance_state`` so each part fits that heap),
and a hardware backend (the TPM's) can run them on CPython with its own
factory. ``CHECKS`` lists the ones every backend must pass; ``STATE_CHECKS``
damage the durable state through ``store()`` or expect registers in RAM, and
fit the file-backed backends only.
"""

from tests.device_runtime.rot.conformance_keys import (
    check_certificate_chain,
    check_csr,
    check_evidence_key_signs_es256,
    check_firmware_measurement,
    check_keys_sign_es256,
    check_keys_stable_across_reopen,
    check_kind,
)
from tests.device_runtime.rot.conformance_state import (
    check_counters,
    check_counters_refused_when_damaged,
    check_measurements,
    check_measurements_restart_at_boot,
    check_random_bytes,
    check_sealing,
    check_sealing_bound_to_firmware,
)

CHECKS = (
    check_kind,
    check_keys_stable_across_reopen,
    check_keys_sign_es256,
    check_evidence_key_signs_es256,
    check_certificate_chain,
    check_firmware_measurement,
    check_measurements,
    check_counters,
    check_sealing,
    check_sealing_bound_to_firmware,
    check_random_bytes,
    check_csr,
)
STATE_CHECKS = (check_measurements_restart_at_boot, check_counters_refused_when_damaged)
