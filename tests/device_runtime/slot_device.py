"""A device with A/B slots for the tests of boot selection, install and trial boot.

Its flash is the CPython port's file (two 64 KiB slots, 4 KiB sectors), its
root of trust the software backend in the test's directory, its image key
``update_device.KEY``; images are signed by ``image_signer`` and cached.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from functools import cache
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from device_runtime.core.boot_selection import Boot, select
from device_runtime.core.image_trust import IMAGE_COUNTER, ImageTrust
from device_runtime.core.signed_image import VerifiedImage
from device_runtime.core.slot_install import install, mark_pending, provision
from device_runtime.core.slots import Slot, slot_pair
from device_runtime.image_signer import sign_image
from device_runtime.ports.cpython import crypto
from device_runtime.ports.cpython.block_device import FileBlockDevice
from device_runtime.rot.software import SoftwareRootOfTrust
from tests.device_runtime.rot.backends import Backend
from tests.device_runtime.update_device import KEY, KEY_POINT, MODEL, payload

SLOT_SIZE = 64 * 1024
OTHER_KEY = ec.derive_private_key(0x0DD_BA11, ec.SECP256R1())


@cache
def signed(
    version: str, security_counter: int, size: int = 20_000, other_key: bool = False
) -> bytes:
    key = OTHER_KEY if other_key else KEY
    body = payload(size, security_counter * 1000 + size)
    return sign_image(body, key=key, version=version, security_counter=security_counter)


def facts(image: bytes, **changes: Any) -> dict[str, Any]:
    """What the signed targets metadata says of *image*, as ``install`` takes it."""
    said = {
        "length": len(image),
        "sha256": hashlib.sha256(image).digest(),
        "hardware": [MODEL],
        "model": MODEL,
    }
    said.update(changes)
    return said


class SlotDevice:
    def __init__(self, directory: Path, slot_size: int = SLOT_SIZE) -> None:
        self.flash = FileBlockDevice(path=directory / "flash", size=2 * slot_size)
        self.slots: list[Slot] = slot_pair(self.flash)
        self.rot: SoftwareRootOfTrust = Backend("software", str(directory)).open("unit")
        self.trust = ImageTrust(KEY_POINT, crypto.verify_ecdsa_der, self.rot)

    @property
    def counter(self) -> int:
        return self.rot.counter(IMAGE_COUNTER)

    def boot(self) -> Boot:
        return select(self.slots, self.trust)

    def provision(self, image: bytes) -> Boot:
        provision(self.slots, BytesIO(image).read, self.trust)
        return self.boot()

    def install(self, image: bytes, running: int, **changes: Any) -> VerifiedImage:
        return install(
            self.slots, running, BytesIO(image).read, self.trust, **facts(image, **changes)
        )

    def update(self, image: bytes, running: int) -> Boot:
        """Install *image* beside slot *running*, mark it pending and boot its trial."""
        self.install(image, running)
        mark_pending(self.slots, running)
        return self.boot()

    def states(self) -> list[str]:
        return [slot.trailer().state for slot in self.slots]


@pytest.fixture
def device(tmp_path: Path) -> Iterator[SlotDevice]:
    made = SlotDevice(tmp_path)
    yield made
    made.flash.close()
