"""The sensor app's signed images, built reproducibly, and the manifest that lists them.

    python -m firmware_images.build --key KEY.pem --out DIR [--version V ...]

writes ``DIR/sensor-app-<version>.img`` for each release asked for (every
release by default) and ``DIR/manifest.json``. The same key and sources give
the same bytes, wherever and whenever they are built: the payload is the
application's source with its release configuration written in (no file
metadata, no clock, no locale), the image header and TLVs are fixed by the
release, and the signature is deterministic (RFC 6979). A reproducible image
is one a third party can rebuild and compare before trusting its hash.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from device_runtime.core import signed_image
from device_runtime.core.errors import ConfigError, SevenfoldError
from device_runtime.image_signer import sign_image
from device_runtime.ports.cpython.atomic_file import write_atomic
from device_runtime.ports.cpython.crypto import verify_ecdsa_der
from firmware_images.sensor_app.releases import (
    APP_NAME,
    RELEASES,
    Release,
    payload,
    release,
    tampered_payload,
)

MANIFEST = "manifest.json"
HEADER_SIZE = 0x200
"""MCUboot's usual ``imgtool sign -H 0x200``: room for the header and its padding."""
FILE_MODE = 0o644
"""Images and manifest are public: the same mode whatever the builder's umask."""


def release_image(
    chosen: Release, key: ec.EllipticCurvePrivateKey, *, tampered: bool = False
) -> bytes:
    """The MCUboot image of release *chosen*, signed by *key*; *tampered*: with the
    attacker's change to its application (``releases.tampered_payload``), signed as if it
    were the release."""
    return sign_image(
        tampered_payload(chosen) if tampered else payload(chosen),
        key=key,
        version=chosen.version,
        security_counter=chosen.security_counter,
        header_size=HEADER_SIZE,
    )


def checked(image: bytes, key: ec.EllipticCurvePrivateKey) -> signed_image.VerifiedImage:
    """*image* verified as a board's first stage will verify it, before anyone else sees it."""
    point = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return signed_image.verify(io.BytesIO(image).read, point, verify_ecdsa_der, len(image))


def load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """The image-signing key: an unencrypted ECDSA private key in PEM (the signer wants P-256)."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"{path}: not a readable unencrypted PEM private key ({exc})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ConfigError(f"{path}: an image-signing key is ECDSA P-256")
    return key


def selected(versions: Iterable[str]) -> list[Release]:
    """The releases named (each once, in release order); every release when none is."""
    wanted = {release(version).version for version in versions}
    return [r for r in RELEASES if r.version in wanted or not wanted]


@dataclass(frozen=True, slots=True)
class BuiltImage:
    """One image written, as the manifest lists it (its hash as the device's verifier got it)."""

    file: str
    version: str
    security_counter: int
    size: int
    image_hash: bytes

    def manifest_entry(self) -> dict[str, object]:
        return {
            "app": APP_NAME,
            "file": self.file,
            "version": self.version,
            "security_counter": self.security_counter,
            "size": self.size,
            "image_hash": self.image_hash.hex(),
        }


def build(
    *, key: ec.EllipticCurvePrivateKey, out: Path, versions: Iterable[str] = ()
) -> list[BuiltImage]:
    """Write the images of *versions* and their manifest into *out*; what was written."""
    built = []
    for chosen in selected(versions):
        image = release_image(chosen, key)
        verified = checked(image, key)
        write_atomic(out / chosen.image_name, image, mode=FILE_MODE)
        built.append(
            BuiltImage(
                file=chosen.image_name,
                version=verified.version,
                security_counter=verified.security_counter,
                size=len(image),
                image_hash=verified.image_hash,
            )
        )
    entries = [image.manifest_entry() for image in built]
    manifest = json.dumps({"images": entries}, indent=2, sort_keys=True) + "\n"
    write_atomic(out / MANIFEST, manifest.encode("ascii"), mode=FILE_MODE)
    return built


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--key", type=Path, required=True, help="P-256 private key (PEM)")
    parser.add_argument("--out", type=Path, required=True, help="directory to write into")
    parser.add_argument(
        "--version", action="append", default=[], help="a release to build (default: all)"
    )
    args = parser.parse_args()
    try:
        built = build(key=load_key(args.key), out=args.out, versions=args.version)
    except SevenfoldError as exc:
        sys.exit(exc.explain())
    for image in built:
        print(f"{args.out / image.file}  {image.image_hash.hex()}")


if __name__ == "__main__":
    main()
