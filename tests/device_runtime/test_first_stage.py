"""A simulated board's first stage: it boots only an image its key signed, intact.

The slot and the key are files in the board's directory (``install_firmware``);
the verifier is the device core's. Every refusal is an ImageError (the image's
fault, with its offset) or a ConfigError (the board's), with the reason.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from device_runtime.core import signed_image as fmt
from device_runtime.core.errors import ConfigError
from device_runtime.core.signed_image import ImageError
from device_runtime.simulated_board import (
    IMAGE_KEY_FILE,
    SLOT_FILE,
    SLOT_SIZE,
    first_stage,
    install_firmware,
)
from firmware_images.sensor_app import releases
from tests.device_runtime.images.cases import finished, patched, reader
from tests.firmware_fixtures import SampleFirmware


def test_the_genuine_image_boots_with_its_payload(
    sample_firmware: SampleFirmware, tmp_path: Path
) -> None:
    sample_firmware.install(tmp_path, "1.1.0")
    verified, payload = first_stage(tmp_path)
    assert (verified.version, verified.security_counter) == ("1.1.0", 2)
    assert verified.image_hash == sample_firmware.image_hash("1.1.0")
    assert payload == releases.payload(releases.release("1.1.0"))
    assert (tmp_path / SLOT_FILE).stat().st_mode & 0o777 == 0o600


def test_an_image_signed_by_another_key_is_refused(
    sample_firmware: SampleFirmware, tmp_path: Path
) -> None:
    install_firmware(
        tmp_path,
        image=sample_firmware.images["1.0.0"],
        image_key=ec.generate_private_key(ec.SECP256R1()).public_key(),
    )
    with pytest.raises(ImageError, match=r"signed by another key: the KEYHASH at offset \d+"):
        first_stage(tmp_path)


def test_a_changed_byte_or_a_cut_image_is_refused(
    sample_firmware: SampleFirmware, tmp_path: Path
) -> None:
    image = bytearray(sample_firmware.images["1.0.0"])
    image[0x200 + 10] ^= 0x01  # one bit of the application
    sample_firmware.install(tmp_path, "1.0.0")
    (tmp_path / SLOT_FILE).write_bytes(bytes(image))
    with pytest.raises(ImageError, match=r"the SHA256 TLV at offset \d+ is not the image's hash"):
        first_stage(tmp_path)
    (tmp_path / SLOT_FILE).write_bytes(sample_firmware.images["1.0.0"][:-40])
    with pytest.raises(ImageError, match="truncated at offset"):
        first_stage(tmp_path)
    (tmp_path / SLOT_FILE).write_bytes(b"\x00" * 64)
    with pytest.raises(ImageError, match="bad magic 0x00000000 at offset 0"):
        first_stage(tmp_path)


def test_an_image_marked_non_bootable_is_refused_though_its_key_signed_it(
    sample_firmware: SampleFirmware, tmp_path: Path
) -> None:
    """MCUboot boots no NON_BOOTABLE slot; neither does the board, whoever signed it."""
    genuine = sample_firmware.images["1.0.0"]
    tlv_area = fmt.inspect(reader(genuine)).tlvs[fmt.SHA256][0] - fmt.TLV_HEADER_SIZE
    marked = finished(patched(genuine[:tlv_area], 16, "<I", 0x10), key=sample_firmware.key)
    install_firmware(tmp_path, image=marked, image_key=sample_firmware.key.public_key())
    with pytest.raises(ImageError, match="flags 0x10 at offset 16: NON_BOOTABLE"):
        first_stage(tmp_path)


def test_a_board_without_a_key_an_image_or_room_is_misconfigured(
    sample_firmware: SampleFirmware, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=f"no image key .*{IMAGE_KEY_FILE}"):
        first_stage(tmp_path)
    sample_firmware.install(tmp_path, "1.0.0")
    (tmp_path / SLOT_FILE).unlink()
    with pytest.raises(ConfigError, match=f"no slot .*{SLOT_FILE}"):
        first_stage(tmp_path)
    (tmp_path / SLOT_FILE).write_bytes(sample_firmware.images["1.0.0"] + b"\xff" * SLOT_SIZE)
    with pytest.raises(ConfigError, match=r"slot .* is over 262144 bytes"):
        first_stage(tmp_path)
    (tmp_path / IMAGE_KEY_FILE).write_bytes(b"-----BEGIN PUBLIC KEY-----\nAA==\n")
    with pytest.raises(ConfigError, match=f"{IMAGE_KEY_FILE} is not a PEM public key"):
        first_stage(tmp_path)
