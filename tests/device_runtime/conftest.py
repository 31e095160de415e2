"""Fixtures the device-runtime tests share."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet_platform.pki import CertificateAuthority
from tests.device_runtime.restartable_broker import RestartableBroker


@pytest.fixture
def restartable_broker(
    fleet_ca: CertificateAuthority, tmp_path: Path
) -> Iterator[RestartableBroker]:
    """A fleet Mosquitto of the test's own that it may stop and start again."""
    broker = RestartableBroker(fleet_ca, tmp_path / "restartable-broker")
    yield broker
    broker.stop()
