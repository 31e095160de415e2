"""Two releases of a Python-source firmware a minor step apart, for delta tests and benchmarks.

The firmware is the device runtime's own sources in a MicroPython ROMFS image (what a
board with a ROM partition holds, about 290 KB), or their mpy-cross bytecode; the
minor step is a bug fix of a few lines in one module, the kind of release deltas are
for. Built from this checkout, so the figures follow the code.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from firmware_images.micropython_bundle import build, romfs_image

REPO = Path(__file__).resolve().parents[2]
MINOR_STEP = (
    (
        "device_runtime/core/agent.py",
        'raise StorageError("boot counter is damaged: " + str(len(stored)) + " bytes stored")',
        'raise StorageError("boot counter is damaged: " + str(len(stored)) + " bytes, not 1-10")',
    ),
    (
        "device_runtime/core/agent.py",
        "        self.seq += 1\n",
        "        self.seq += 1\n        self.last_beat_ms = self.clock.monotonic_ms()\n",
    ),
)
"""(file, text, replacement): a changed message and one added line."""


def source_tree(out: Path, *, stepped: bool) -> Path:
    """A copy of ``device_runtime``'s sources under *out*, with the minor step if *stepped*."""
    for source in sorted((REPO / "device_runtime").rglob("*.py")):
        target = out / source.relative_to(REPO)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    if stepped:
        for name, text, replacement in MINOR_STEP:
            path = out / name
            content = path.read_text(encoding="utf-8")
            assert content.count(text) == 1, f"the minor step no longer applies to {name}"
            path.write_text(content.replace(text, replacement), encoding="utf-8")
    return out


def source_firmware(work: Path, *, stepped: bool) -> bytes:
    """The sources as a ROMFS image."""
    return romfs_image(source_tree(work / "src", stepped=stepped) / "device_runtime")


def bytecode_firmware(work: Path, *, stepped: bool) -> bytes:
    """The portable modules' bytecode as a ROMFS image, as ``micropython_bundle`` ships it."""
    root = source_tree(work / "src", stepped=stepped)
    build(root=root, out=work / "mpy")
    return romfs_image(work / "mpy")
