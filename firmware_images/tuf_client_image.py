"""The ROMFS image the MicroPython TUF client runs from, built once per source tree.

``scripts/tuf-client-micropython`` runs the device core's TUF client under the
real MicroPython the way a board runs it: as mpy-cross bytecode in a ROM
partition (``micropython_bundle.romfs_image``), so the heap given with
``-X heapsize`` holds only what the client makes. The conformance suite starts
the client hundreds of times; compiling the bundle each time would dominate,
so the image is cached under ``.sevenfold/`` keyed by a hash of every source
it holds. ``python -m firmware_images.tuf_client_image`` prints its path.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from pathlib import Path

from firmware_images.micropython_bundle import build, portable_sources, romfs_image

REPO = Path(__file__).resolve().parents[1]


def image_path(root: Path = REPO) -> Path:
    """The cached image for the sources under *root*, built first if it is missing."""
    digest = hashlib.sha256()
    for source in portable_sources(root):
        digest.update(str(source.relative_to(root)).encode() + b"\0" + source.read_bytes())
    cache = root / ".sevenfold" / "tuf-client"
    image = cache / (digest.hexdigest()[:24] + ".romfs")
    if not image.exists():
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache) as work:
            build(root=root, out=Path(work) / "tree")
            staged = Path(work) / "image"
            staged.write_bytes(romfs_image(Path(work) / "tree"))
            os.replace(staged, image)
    return image


if __name__ == "__main__":
    sys.stdout.write(str(image_path()) + "\n")
