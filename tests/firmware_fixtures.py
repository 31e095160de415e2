"""Pytest plugin: the sample firmware, built once per session, for boards to boot.

Every release of the sensor app (``firmware_images``) is built with the real
build and signed with one session key, as a release line signs them; a test
installs an image in a board's slot with the key its first stage trusts, and
endorses an image by its real hash (the SHA256 TLV value).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from device_runtime.simulated_board import install_firmware
from device_runtime.simulator import BootedImage
from firmware_images.build import build, release_image
from firmware_images.sensor_app.releases import release


@dataclass(frozen=True)
class SampleFirmware:
    """The built images (file bytes by version), their hashes, and the key that signed them."""

    key: ec.EllipticCurvePrivateKey
    directory: Path
    images: dict[str, bytes]
    booted: dict[str, BootedImage]
    """By version: what a first stage measures when it boots that image."""
    tampered: bytes
    """1.0.0 with an attacker's change to its application, signed with the same key."""

    def image_hash(self, version: str) -> bytes:
        return self.booted[version].image_hash

    def install(self, board: Path, version: str) -> None:
        """Flash *version* (or ``"tampered"``) into *board*'s slot; its first stage trusts
        the session key."""
        image = self.tampered if version == "tampered" else self.images[version]
        install_firmware(board, image=image, image_key=self.key.public_key())


@pytest.fixture(scope="session")
def sample_firmware(tmp_path_factory: pytest.TempPathFactory) -> SampleFirmware:
    key = ec.generate_private_key(ec.SECP256R1())
    directory = tmp_path_factory.mktemp("firmware")
    built = build(key=key, out=directory)
    images = {image.version: (directory / image.file).read_bytes() for image in built}
    booted = {
        image.version: BootedImage(image.version, image.security_counter, image.image_hash)
        for image in built
    }
    tampered = release_image(release("1.0.0"), key, tampered=True)
    return SampleFirmware(
        key=key, directory=directory, images=images, booted=booted, tampered=tampered
    )
