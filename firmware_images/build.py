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
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from device_runtime.image_signer import sign_image

from device_runtime.core.errors import ConfigError, SevenfoldError
from device_runtime.ports.cpython.atomic_file import write_atomic
from firmware_images.sensor_app.releases import APP_NAME, RELEASES, Release, payload, release

MANIFEST = "manifest.json"
HEADER_SIZE = 0x200
"""MCUboot's usual ``imgtool sign -H 0x200``: room for the header and its padding."""
FILE_MODE = 0o644
"""Images and manifest are public: the same mode whatever the builder's umask."""


@dataclass(frozen=True, slots=True)
class BuiltImage:
    """One image as the manifest lists it."""

    release: Release
    image: bytes

    def entry(self, digest: bytes) -> dict[str, object]:
        return {
            "app": APP_NAME,
            "version": self.release.version,
            "security_counter": self.release.security_counter,
            "file": self.release.image_name,
            "size": len(self.image),
            "image_hash": digest.hex(),
        }


def signed_image(chosen: Release, key: ec.EllipticCurvePrivateKey) -> bytes:
    """The MCUboot image of release *chosen*, signed by *key*."""
    return sign_image(
        payload(chosen),
        key=key,
        version=chosen.version,
        security_counter=chosen.security_counter,
        header_size=HEADER_SIZE,
    )


def load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """The image-signing key: an unencrypted P-256 private key in PEM."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"{path}: not a readable unencrypted PEM private key ({exc})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ConfigError(f"{path}: an image-signing key is ECDSA P-256")
    return key


def selected(versions: Iterable[str]) -> list[Release]:
    """The releases named (each once, in release order); every release when none is."""
    wanted = {release(version).version for version in versions}
    return [r for r in RELEASES if r.version in wanted or not wanted]


def build(
    *, key: ec.EllipticCurvePrivateKey, out: Path, versions: Iterable[str] = ()
) -> list[dict[str, object]]:
    """Write the images of *versions* and their manifest into *out*; the manifest's entries."""
    import io

    from device_runtime.core.signed_image import SHA256, inspect

    entries = []
    for chosen in selected(versions):
        image = signed_image(chosen, key)
        write_atomic(out / chosen.image_name, image, mode=FILE_MODE)
        digest = inspect(io.BytesIO(image).read).value(SHA256)
        entries.append(BuiltImage(chosen, image).entry(digest))
    manifest = json.dumps({"images": entries}, indent=2, sort_keys=True) + "\n"
    write_atomic(out / MANIFEST, manifest.encode("ascii"), mode=FILE_MODE)
    return entries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--key", type=Path, required=True, help="P-256 private key (PEM)")
    parser.add_argument("--out", type=Path, required=True, help="directory to write into")
    parser.add_argument(
        "--version", action="append", default=[], help="a release to build (default: all)"
    )
    args = parser.parse_args()
    try:
        entries = build(key=load_key(args.key), out=args.out, versions=args.version)
    except SevenfoldError as exc:
        sys.exit(exc.explain())
    for entry in entries:
        print(f"{args.out / str(entry['file'])}  {entry['image_hash']}")


if __name__ == "__main__":
    main()
