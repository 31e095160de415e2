"""A real TPM 2.0 for the tests: ``device_runtime.simulated_tpm`` on ports of the test's own.

The ``swtpm`` fixture manufactures a fresh TPM (EK certificate from a CA in the
test's tmp dir), serves it and always kills it at teardown, also when the test
failed. ``tpm_resource_manager`` adds tpm2-abrmd in front of it, for tests
whose TPM is used by the TLS stack as well (see
``device_runtime/ports/cpython/tpm_tls.py``).

Import the fixtures where they are used (``from tests.swtpm_fixtures import
swtpm``); in strict mode a missing swtpm fails the test instead of skipping.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from device_runtime.simulated_tpm import SimulatedTpm, TpmResourceManager
from tests.components import binary


@pytest.fixture
def swtpm(tmp_path: Path) -> Iterator[SimulatedTpm]:
    """A running swtpm of this test's own, with a fresh EK and EK certificate."""
    for program in ("swtpm", "swtpm_setup", "swtpm_localca"):
        binary(program)
    tpm = SimulatedTpm(directory=tmp_path / "swtpm")
    try:
        tpm.start()
        yield tpm
    finally:
        tpm.kill()


@pytest.fixture
def tpm_resource_manager(swtpm: SimulatedTpm, tmp_path: Path) -> Iterator[TpmResourceManager]:
    """tpm2-abrmd on a private session bus in front of this test's swtpm."""
    for program in ("tpm2-abrmd", "dbus-daemon", "dbus-send"):
        binary(program)
    manager = TpmResourceManager(tpm=swtpm, directory=tmp_path / "abrmd")
    try:
        manager.start()
        yield manager
    finally:
        manager.stop()
