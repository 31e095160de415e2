"""The sample firmware's build: signed images a board accepts, byte-identical every time.

Reproducible means the same key and sources give the same bytes whatever the
builder's clock, file times, umask, locale or the order the releases were
asked for: checked by building in this process, and again in a fresh
interpreter from a copy of the sources with other file times, another umask,
another locale and the releases asked for backwards, and comparing every byte.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from device_runtime.core import signed_image
from device_runtime.core.errors import ConfigError
from device_runtime.core.signed_image import ImageError
from firmware_images import build
from firmware_images.sensor_app import releases
from tests.components import binary

REPO = Path(__file__).resolve().parents[2]
VERSIONS = [r.version for r in releases.RELEASES]


def _pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.fixture(scope="module")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("key") / "release.pem"
    path.write_bytes(_pem(ec.generate_private_key(ec.SECP256R1())))
    return path


def _files(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir())}


def test_every_release_is_built_signed_and_listed(key_file: Path, tmp_path: Path) -> None:
    built = build.build(key=build.load_key(key_file), out=tmp_path)
    assert [image.version for image in built] == VERSIONS == ["1.0.0", "1.1.0", "1.2.0", "1.3.0"]
    assert [image.security_counter for image in built] == [1, 2, 3, 4]
    manifest = json.loads((tmp_path / build.MANIFEST).read_text())
    assert manifest == {"images": [image.manifest_entry() for image in built]}
    assert set(_files(tmp_path)) == {build.MANIFEST, *(f"sensor-app-{v}.img" for v in VERSIONS)}
    for image in built:
        data = (tmp_path / image.file).read_bytes()
        assert image.size == len(data)
        parsed = signed_image.inspect(io.BytesIO(data).read)
        assert (parsed.version, parsed.security_counter) == (image.version, image.security_counter)
        # The listed hash is the image's measurement: SHA-256 of all that is signed.
        signed_end = parsed.header_size + parsed.payload_size + parsed.protected_size
        assert image.image_hash == parsed.value(signed_image.SHA256)
        assert image.image_hash == hashlib.sha256(data[:signed_end]).digest()
        start = parsed.header_size
        wanted = releases.payload(releases.release(image.version))
        assert data[start : start + parsed.payload_size] == wanted


def test_the_same_inputs_give_the_same_bytes(key_file: Path, tmp_path: Path) -> None:
    key = build.load_key(key_file)
    build.build(key=key, out=tmp_path / "one")
    build.build(key=key, out=tmp_path / "two")
    one = _files(tmp_path / "one")
    assert one == _files(tmp_path / "two")

    # A fresh interpreter, from a copy of the sources whose files carry other times, under
    # another umask and locale, asked for the releases backwards, one at a time.
    sources = tmp_path / "sources"
    for package in ("device_runtime", "firmware_images"):
        shutil.copytree(REPO / package, sources / package, ignore=shutil.ignore_patterns("*.pyc"))
    for path in sources.rglob("*"):
        os.utime(path, (1_000_000_000, 1_000_000_000))
    out = tmp_path / "three"
    arguments = [arg for version in reversed(VERSIONS) for arg in ("--version", version)]
    run = subprocess.run(
        [sys.executable, "-m", "firmware_images.build", "--key", str(key_file), "--out", str(out),
         *arguments],
        capture_output=True, text=True, cwd=sources, check=False, umask=0o077,
        env={**os.environ, "PYTHONPATH": str(sources), "LC_ALL": "tr_TR.UTF-8", "TZ": "Asia/Tokyo",
             "PYTHONHASHSEED": "12345", "PYTHONDONTWRITEBYTECODE": "1"},
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert _files(out) == one
    assert all(path.stat().st_mode & 0o777 == build.FILE_MODE for path in out.iterdir())
    listed = [line.split()[0].rsplit("/", 1)[-1] for line in run.stdout.splitlines()]
    assert listed == [f"sensor-app-{version}.img" for version in VERSIONS]


def test_another_key_signs_the_same_measurement(key_file: Path, tmp_path: Path) -> None:
    """The hash covers header, payload and protected TLVs, not KEYHASH or the signature:
    what attestation endorses is the firmware, whoever signed it; the first stage checks
    the signer."""
    ours = build.build(key=build.load_key(key_file), out=tmp_path / "ours", versions=["1.0.0"])
    theirs = build.build(
        key=ec.generate_private_key(ec.SECP256R1()), out=tmp_path / "theirs", versions=["1.0.0"]
    )
    assert ours[0].image_hash == theirs[0].image_hash
    assert (tmp_path / "ours" / ours[0].file).read_bytes() != (
        tmp_path / "theirs" / theirs[0].file
    ).read_bytes()


def test_imgtool_verifies_what_the_build_signed(key_file: Path, tmp_path: Path) -> None:
    (image,) = build.build(key=build.load_key(key_file), out=tmp_path, versions=["1.1.0"])
    run = subprocess.run(
        [binary("imgtool", "pip install imgtool"), "verify", "-k", str(key_file),
         str(tmp_path / image.file)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"Image digest: {image.image_hash.hex()}" in run.stdout
    assert "Image version: 1.1.0" in run.stdout


def test_a_subset_is_built_in_release_order_each_once(key_file: Path, tmp_path: Path) -> None:
    built = build.build(
        key=build.load_key(key_file), out=tmp_path, versions=["1.3.0", "1.0.0", "1.3.0"]
    )
    assert [image.version for image in built] == ["1.0.0", "1.3.0"]


def test_an_unknown_release_is_refused_naming_the_known_ones(key_file: Path) -> None:
    with pytest.raises(ConfigError, match=r"no release '9\.9\.9' \(releases: 1\.0\.0, 1\.1\.0"):
        build.selected(["9.9.9"])
    run = subprocess.run(
        [sys.executable, "-m", "firmware_images.build", "--key", str(key_file), "--out", "x",
         "--version", "9.9.9"],
        capture_output=True, text=True, cwd=REPO, check=False,
    )  # fmt: skip
    assert run.returncode == 1 and run.stderr.startswith("config: sensor-app has no release")
    assert "Traceback" not in run.stderr


def test_keys_the_signer_cannot_use_are_refused(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    with pytest.raises(ConfigError, match="not a readable unencrypted PEM private key"):
        build.load_key(garbage)
    with pytest.raises(ConfigError, match="not a readable"):
        build.load_key(tmp_path / "absent.pem")
    p384 = tmp_path / "p384.pem"
    p384.write_bytes(_pem(ec.generate_private_key(ec.SECP384R1())))
    with pytest.raises(ImageError, match="not P-256"):
        build.build(key=build.load_key(p384), out=tmp_path / "out")


def test_a_source_without_one_configuration_block_is_refused() -> None:
    source = releases.SOURCE.read_bytes()
    first = releases.RELEASES[0]
    for broken in (source.replace(releases.BEGIN, b""), source + releases.BEGIN + releases.END):
        with pytest.raises(ConfigError, match="one release configuration block"):
            releases.payload(first, broken)
