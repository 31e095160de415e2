"""A simulated board's first stage: it boots only an image its key signed, intact, not a
rollback, from the slot the bootloader's rule chooses.

The flash and the key are files in the board's directory (``install_firmware``
puts an image in slot A, as a factory's programmer would, unchecked); the
verifier and the choice of slot are the device core's. Every refusal is an
ImageError (the image's fault, with its offset) or a ConfigError (the
board's), with the reason.
"""

from __future__ import annotations

import contextlib
import hashlib
from io import BytesIO
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from device_runtime.core import signed_image as fmt
from device_runtime.core.errors import ConfigError
from device_runtime.core.image_trust import IMAGE_COUNTER
from device_runtime.core.signed_image import ImageError
from device_runtime.core.slot_install import install, mark_pending
from device_runtime.core.slots import CONFIRMED, HEALTH_FAILED
from device_runtime.core.trial_boot import confirm, fail_trial
from device_runtime.rot.derived import DerivedRootOfTrust
from device_runtime.simulated_board import (
    FLASH_FILE,
    IMAGE_KEY_FILE,
    SLOT_SIZE,
    BoardFlash,
    first_stage,
    install_firmware,
)
from device_runtime.simulator import open_root_of_trust
from firmware_images.sensor_app import releases
from tests.device_runtime.images.cases import finished, patched, reader
from tests.firmware_fixtures import SampleFirmware

HWMODEL = "sevenfold-sim-board"


def counters(board: Path) -> DerivedRootOfTrust:
    return open_root_of_trust(kind="software", directory=board)


def boot(board: Path) -> BoardFlash:
    flash = first_stage(board, counters(board))
    flash.close()
    return flash


def update(flash: BoardFlash, image: bytes) -> None:
    """What the update agent does with a downloaded image: install it, mark it pending."""
    facts = {"length": len(image), "sha256": hashlib.sha256(image).digest(), "hardware": [HWMODEL]}
    install(flash.slots, flash.boot.slot, BytesIO(image).read, flash.trust, model=HWMODEL,
            **facts)  # type: ignore[arg-type]  # fmt: skip
    mark_pending(flash.slots, flash.boot.slot)


def test_the_genuine_image_boots_from_slot_a_with_its_payload(
    sample_firmware: SampleFirmware, tmp_path: Path
) -> None:
    sample_firmware.install(tmp_path, "1.1.0")
    flash = boot(tmp_path)
    assert (flash.boot.slot, flash.boot.trial, flash.boot.reverted) == (0, False, None)
    verified = flash.boot.image
    assert (verified.version, verified.security_counter) == ("1.1.0", 2)
    assert verified.image_hash == sample_firmware.image_hash("1.1.0")
    assert flash.payload == releases.payload(releases.release("1.1.0"))
    assert (tmp_path / FLASH_FILE).stat().st_mode & 0o777 == 0o600
    # Booting a confirmed image raises the anti-rollback counter to its security counter.
    assert counters(tmp_path).counter(IMAGE_COUNTER) == 2


def test_an_image_signed_by_another_key_is_refused(
    sample_firmware: SampleFirmware, tmp_path: Path
) -> None:
    install_firmware(
        tmp_path,
        image=sample_firmware.images["1.0.0"],
        image_key=ec.generate_private_key(ec.SECP256R1()).public_key(),
    )
    with pytest.raises(
        ImageError, match=r"slot A: its image was refused: signed by another key: the KEYHASH"
    ):
        boot(tmp_path)


def test_a_changed_byte_or_a_cut_image_is_refused(
    sample_firmware: SampleFirmware, tmp_path: Path
) -> None:
    image = bytearray(sample_firmware.images["1.0.0"])
    image[0x200 + 10] ^= 0x01  # one bit of the application
    key = sample_firmware.key.public_key()
    install_firmware(tmp_path, image=bytes(image), image_key=key)
    with pytest.raises(ImageError, match=r"the SHA256 TLV at offset \d+ is not the image's hash"):
        boot(tmp_path)
    install_firmware(tmp_path, image=sample_firmware.images["1.0.0"][:-40], image_key=key)
    with pytest.raises(ImageError, match="at offset"):
        boot(tmp_path)
    install_firmware(tmp_path, image=b"\x00" * 64, image_key=key)
    with pytest.raises(ImageError, match="bad magic 0x00000000 at offset 0"):
        boot(tmp_path)


def test_an_image_marked_non_bootable_is_refused_though_its_key_signed_it(
    sample_firmware: SampleFirmware, tmp_path: Path
) -> None:
    """MCUboot boots no NON_BOOTABLE slot; neither does the board, whoever signed it."""
    genuine = sample_firmware.images["1.0.0"]
    tlv_area = fmt.inspect(reader(genuine)).tlvs[fmt.SHA256][0] - fmt.TLV_HEADER_SIZE
    marked = finished(patched(genuine[:tlv_area], 16, "<I", 0x10), key=sample_firmware.key)
    install_firmware(tmp_path, image=marked, image_key=sample_firmware.key.public_key())
    with pytest.raises(ImageError, match="flags 0x10 at offset 16: NON_BOOTABLE"):
        boot(tmp_path)


def test_an_image_below_the_counter_is_a_rollback_and_never_boots(
    sample_firmware: SampleFirmware, tmp_path: Path
) -> None:
    sample_firmware.install(tmp_path, "1.1.0")
    boot(tmp_path)  # the counter is now 1.1.0's, 2
    sample_firmware.install(tmp_path, "1.0.0")  # security counter 1, re-flashed by hand
    with pytest.raises(ImageError, match="security counter 1, below the root of trust's 2"):
        boot(tmp_path)


def test_an_update_gets_one_trial_then_is_confirmed_or_reverted(
    sample_firmware: SampleFirmware, tmp_path: Path
) -> None:
    sample_firmware.install(tmp_path, "1.0.0")
    with contextlib.closing(first_stage(tmp_path, counters(tmp_path))) as flash:
        update(flash, sample_firmware.images["1.1.0"])
    with contextlib.closing(first_stage(tmp_path, counters(tmp_path))) as flash:
        assert (flash.boot.slot, flash.boot.trial, flash.boot.image.version) == (1, True, "1.1.0")
        assert flash.payload == releases.payload(releases.release("1.1.0"))
        assert counters(tmp_path).counter(IMAGE_COUNTER) == 1  # not raised before confirm
        confirm(flash.slots, flash.boot, flash.trust)
        assert flash.slots[1].trailer().state == CONFIRMED
    assert counters(tmp_path).counter(IMAGE_COUNTER) == 2
    with contextlib.closing(first_stage(tmp_path, counters(tmp_path))) as flash:
        assert (flash.boot.slot, flash.boot.trial) == (1, False)
        update(flash, sample_firmware.images["1.2.0"])
    with contextlib.closing(first_stage(tmp_path, counters(tmp_path))) as flash:
        assert (flash.boot.slot, flash.boot.trial, flash.boot.image.version) == (0, True, "1.2.0")
        fail_trial(flash.slots, flash.boot, HEALTH_FAILED)
    flash = boot(tmp_path)
    assert (flash.boot.slot, flash.boot.image.version, flash.boot.reverted) == (1, "1.1.0", 0)
    assert flash.boot.revert_reason == "its trial failed: its health check failed"


def test_a_board_without_a_key_or_firmware_or_room_is_misconfigured(
    sample_firmware: SampleFirmware, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=f"no image key .*{IMAGE_KEY_FILE}"):
        boot(tmp_path)
    sample_firmware.install(tmp_path, "1.0.0")
    (tmp_path / FLASH_FILE).unlink()
    with pytest.raises(ConfigError, match=f"the board has no firmware: no {FLASH_FILE}"):
        boot(tmp_path)
    with pytest.raises(ConfigError, match=f"does not fit a {SLOT_SIZE}-byte slot"):
        install_firmware(tmp_path, image=b"\xff" * (SLOT_SIZE + 1),
                         image_key=sample_firmware.key.public_key())  # fmt: skip
    (tmp_path / IMAGE_KEY_FILE).write_bytes(b"-----BEGIN PUBLIC KEY-----\nAA==\n")
    with pytest.raises(ConfigError, match=f"{IMAGE_KEY_FILE} is not a PEM public key"):
        boot(tmp_path)
