"""The portable conformance suite run against the TPM backend, on a real swtpm per device.

A backend's "open again" is a reboot: here the previous connection is closed
and the device's swtpm restarted on the same state, which resets its PCRs and
keeps its keys and NV counters, as a power cycle does. The checks that damage
a file-backed counter record do not apply to a TPM (its counters are NV
indices; ``test_tpm.py`` checks an index posing as one).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from attestation_server.tpm_identity import verify_quote
from device_runtime.core import evidence
from device_runtime.rot.tpm import TpmRootOfTrust
from device_runtime.simulated_tpm import SimulatedTpm
from tests.components import binary
from tests.device_runtime.rot import conformance_keys, conformance_state


class TpmBackend:
    kind = "tpm"
    firmware_bound = False
    """The attestation key is a TPM key; firmware changes show in PCRs and quotes instead."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._tpms: dict[str, SimulatedTpm] = {}
        self._open: dict[str, TpmRootOfTrust] = {}

    def open(self, device: str, firmware: str = "1.0.0") -> TpmRootOfTrust:
        previous = self._open.pop(device, None)
        if previous is not None:
            previous.close()
            self._tpms[device].restart()
        elif device not in self._tpms:
            tpm = SimulatedTpm(directory=self.directory / device)
            tpm.start()
            self._tpms[device] = tpm
        rot = TpmRootOfTrust.open(tcti=self._tpms[device].tcti)
        self._open[device] = rot
        return rot

    def close(self) -> None:
        for rot in self._open.values():
            rot.close()
        for tpm in self._tpms.values():
            tpm.kill()


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[TpmBackend]:
    for program in ("swtpm", "swtpm_setup", "swtpm_localca"):
        binary(program)
    tpm_backend = TpmBackend(tmp_path)
    try:
        yield tpm_backend
    finally:
        tpm_backend.close()


CHECKS: list[Callable[[Any], None]] = [
    conformance_keys.check_kind,
    conformance_keys.check_keys_stable_across_reopen,
    conformance_keys.check_keys_sign_es256,
    conformance_keys.check_evidence_key_signs_es256,
    conformance_keys.check_certificate_chain,
    conformance_keys.check_firmware_measurement,
    conformance_keys.check_csr,
    conformance_state.check_measurements,
    conformance_state.check_measurements_restart_at_boot,
    conformance_state.check_counters,
    conformance_state.check_sealing,
    conformance_state.check_sealing_bound_to_firmware,
    conformance_state.check_random_bytes,
]


@pytest.mark.parametrize("check", CHECKS, ids=[check.__name__ for check in CHECKS])
def test_the_tpm_backend_meets_the_contract(
    backend: TpmBackend, check: Callable[[Any], None]
) -> None:
    check(backend)


def test_the_quote_evidence_needs_covers_the_image_and_config_registers(
    backend: TpmBackend,
) -> None:
    """What a TPM sends beside its token: a quote over registers 0 and 1 with the token's nonce,
    each register ``SHA-256(0^32 || digest)`` after ``measure_boot``."""
    rot = backend.open("a")
    image, config = hashlib.sha256(b"image").digest(), hashlib.sha256(b"config").digest()
    evidence.measure_boot(rot, image, config)
    nonce = rot.random_bytes(32)
    attest, signature = rot.quote(nonce, registers=(0, 1))
    expected = {i: hashlib.sha256(bytes(32) + d).digest() for i, d in ((0, image), (1, config))}
    info = verify_quote(rot.quote_public(), attest, signature, nonce, expected)
    assert info.registers == (0, 1)
