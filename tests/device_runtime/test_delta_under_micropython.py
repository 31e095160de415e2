"""A delta update from 1.0.0 to 1.1.0 applied by the real MicroPython with a 64 KiB heap.

The releases are MCUboot images of a Python-source firmware of about 290 KB a minor
step apart (``tests/update_service/firmware_steps.py``), signed by ``imgtool`` (the
reference signer) and by ``device_runtime.image_signer``. The server side makes the
delta (``update_service.deltas``); the device streams it from a file, reads its old
slot at random from another and writes the new one, hashing as it goes, then checks
the new slot's hash and signature with its own image verifier
(``delta_on_device.py``, run from ROMFS like a board's flash). Only an image with the
release's hash that verifies under the release key counts: a cut or corrupted delta
is refused with its reason or caught by the hash, a release signed by another key is
refused by the verifier after the delta applied cleanly.
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from device_runtime.core import signed_image
from device_runtime.image_signer import public_point, sign_image
from device_runtime.ports.cpython.crypto import verify_ecdsa_der
from firmware_images.micropython_bundle import romfs_image
from tests.components import binary
from tests.device_runtime.delta_on_device import MARK
from tests.device_runtime.test_under_micropython import bytecode_tree
from tests.update_service.firmware_steps import source_firmware
from update_service.deltas import build_delta, worth_publishing

__all__ = ["bytecode_tree"]

HEAP = "64K"
MODULE = "tests.device_runtime.delta_on_device"
LAUNCHER = Path(__file__).with_name("flash_launcher.py")
SLOT_SIZE = 0x100000
"""Room for the device sources as a ROMFS image (about 530 KB), the release this test signs."""


def imgtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary("imgtool", "pip install imgtool"), *args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def signed(work: Path, key: Path, version: str, payload: bytes) -> Path:
    raw = work / f"{version}.bin"
    raw.write_bytes(payload)
    image = work / f"{version}.img"
    result = imgtool(
        "sign", "-k", str(key), "--pad-header", "-H", "0x200", "-v", version, "-s", "1",
        "--align", "4", "-S", str(SLOT_SIZE), str(raw), str(image),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return image


@pytest.fixture(scope="module")
def releases(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path, Path]:
    """(key, 1.0.0 image, 1.1.0 image, delta) made the way the release service makes them."""
    work = tmp_path_factory.mktemp("releases")
    key = work / "key.pem"
    assert imgtool("keygen", "-k", str(key), "-t", "ecdsa-p256").returncode == 0
    old = signed(work, key, "1.0.0", source_firmware(work / "a", stepped=False))
    new = signed(work, key, "1.1.0", source_firmware(work / "b", stepped=True))
    delta = work / "1.0.0-1.1.0.delta"
    delta.write_bytes(build_delta(old.read_bytes(), new.read_bytes()))
    return key, old, new, delta


def on_device(flash: Path, *args: str) -> list[str]:
    """What the device printed: the applier's outcome, then the verifier's if a key was given."""
    result = subprocess.run(
        [sys.executable, str(LAUNCHER), str(flash), HEAP, MODULE, *args],
        cwd=flash.parent, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line.split(" ", 1)[1] for line in result.stdout.splitlines() if line.startswith(MARK)]
    assert 1 <= len(lines) <= 2, result.stdout
    return lines


def applied(flash: Path, *args: str) -> tuple[str, str]:
    (line,) = on_device(flash, *args)
    outcome, rest = line.split(" ", 1)
    return outcome, rest


@pytest.fixture(scope="module")
def flash(bytecode_tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    image = tmp_path_factory.mktemp("flash") / "flash.romfs"
    image.write_bytes(romfs_image(bytecode_tree))
    return image


def test_the_device_rebuilds_a_signed_release_from_a_delta(
    releases: tuple[Path, Path, Path, Path], flash: Path, tmp_path: Path
) -> None:
    key, old, new, delta = releases
    expected = new.read_bytes()
    assert worth_publishing(delta.read_bytes(), len(expected))
    out = tmp_path / "slot-b.img"
    outcome, figures = applied(flash, str(old), str(delta), str(out), str(SLOT_SIZE))
    assert outcome == "made", figures
    size, digest, microseconds, free_before, free_after = figures.split()
    assert int(size) == len(expected)
    assert digest == hashlib.sha256(expected).hexdigest()
    assert out.read_bytes() == expected
    verified = imgtool("verify", "-k", str(key), str(out))
    assert verified.returncode == 0 and "correctly validated" in verified.stdout, verified.stdout
    print(f"{old.stat().st_size} -> {len(expected)} bytes by a {delta.stat().st_size}-byte delta"
          f" in {int(microseconds) / 1000:.1f} ms at {HEAP}; {free_before} bytes free before,"
          f" {free_after} after")  # fmt: skip


def test_a_delta_to_a_slot_too_small_is_refused_on_the_device(
    releases: tuple[Path, Path, Path, Path], flash: Path, tmp_path: Path
) -> None:
    _, old, new, delta = releases
    outcome, reason = applied(flash, str(old), str(delta), str(tmp_path / "b"), "4096")
    assert outcome == "refused"
    assert (
        reason
        == f"bad-delta the patch makes {new.stat().st_size} bytes, more than the 4096 allowed"
    )


@pytest.mark.parametrize("damage", ["cut", "size", "flipped"])
def test_a_damaged_delta_is_refused_or_caught_by_the_hash(
    damage: str, releases: tuple[Path, Path, Path, Path], flash: Path, tmp_path: Path
) -> None:
    """A cut or a lying size is refused; a bit flipped in the compressed middle may still
    decode to valid entries (even to the right image: a back-reference moved inside a
    run of zeros copies the same zeros), and then the hash of what was written decides."""
    _, old, new, delta = releases
    data = bytearray(delta.read_bytes())
    if damage == "cut":
        del data[len(data) // 2 :]
    elif damage == "size":
        data[1] ^= 0x01
    else:
        data[len(data) // 2] ^= 0x10
    broken = tmp_path / "broken.delta"
    broken.write_bytes(bytes(data))
    out = tmp_path / "b"
    outcome, rest = applied(flash, str(old), str(broken), str(out), str(SLOT_SIZE))
    if damage == "cut":
        assert outcome == "refused" and rest.startswith("bad-delta the patch ends"), rest
    elif damage == "size":
        assert outcome == "refused" and rest.startswith("bad-delta "), rest
    elif outcome == "made":
        digest = rest.split()[1]
        assert digest == hashlib.sha256(out.read_bytes()).hexdigest()
        counts = digest == hashlib.sha256(new.read_bytes()).hexdigest()
        assert counts == (out.read_bytes() == new.read_bytes())
    else:
        assert rest.startswith("bad-delta "), rest


RELEASE_KEY = ec.derive_private_key(0x0DE1_7A, ec.SECP256R1())
OTHER_KEY = ec.derive_private_key(0x0BAD, ec.SECP256R1())


@pytest.fixture(scope="module")
def own_releases(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes, bytes]:
    """(folder, 1.0.0 image, 1.1.0 image) signed by the project's own signer."""
    work = tmp_path_factory.mktemp("own-releases")
    old = sign_image(source_firmware(work / "a", stepped=False), key=RELEASE_KEY,
                     version="1.0.0", security_counter=3)  # fmt: skip
    new = sign_image(source_firmware(work / "b", stepped=True), key=RELEASE_KEY,
                     version="1.1.0", security_counter=4)  # fmt: skip
    (work / "1.0.0.img").write_bytes(old)
    return work, old, new


@pytest.mark.parametrize("signer", [RELEASE_KEY, OTHER_KEY], ids=["release-key", "other-key"])
def test_the_device_counts_a_rebuilt_image_only_if_its_own_verifier_passes_it(
    signer: ec.EllipticCurvePrivateKey,
    own_releases: tuple[Path, bytes, bytes],
    flash: Path,
    tmp_path: Path,
) -> None:
    work, old, new = own_releases
    if signer is OTHER_KEY:
        payload = source_firmware(tmp_path / "payload", stepped=True)
        new = sign_image(payload, key=OTHER_KEY, version="1.1.0", security_counter=4)
    delta = tmp_path / "delta"
    delta.write_bytes(build_delta(old, new))
    out = tmp_path / "slot-b.img"
    key = public_point(RELEASE_KEY.public_key()).hex()
    made, verdict = on_device(
        flash, str(work / "1.0.0.img"), str(delta), str(out), str(SLOT_SIZE), key
    )
    assert made.split()[:3] == ["made", str(len(new)), hashlib.sha256(new).hexdigest()]
    assert out.read_bytes() == new
    if signer is RELEASE_KEY:
        point = public_point(RELEASE_KEY.public_key())
        measured = signed_image.verify(io.BytesIO(new).read, point, verify_ecdsa_der).image_hash
        assert verdict == f"verified 1.1.0 4 {measured.hex()}"
    else:
        assert verdict.startswith("image-refused signed by another key"), verdict
