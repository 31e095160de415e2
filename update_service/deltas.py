"""Delta patches between two releases of one hardware model, and when one is worth publishing.

A patch is detools' *sequential* type with heatshrink compression (``docs/deltas.md``
has the measurements behind the choice): the device applies it in constant memory
with ``device_runtime.core.delta_patch``, reading its old slot at random and
writing the new one in order. Every patch made here is applied once with that very
code before it is handed out, so a patch the device would refuse is never published.
"""

from __future__ import annotations

import io

import detools  # type: ignore[import-untyped]

from device_runtime.core import delta_patch
from device_runtime.core.delta_patch import DeltaError

HEATSHRINK_WINDOW_SZ2 = 12
"""A 4 KiB window, the most the device takes (``heatshrink.MAX_WINDOW_SZ2``)."""
HEATSHRINK_LOOKAHEAD_SZ2 = 11
"""Back-references of up to 2 KiB: runs of unchanged bytes, which a patch is mostly
made of, cost a few bits per 2 KiB (the library's default of 128 bytes made the
patches of ``bench/bench_delta.py`` up to 8 times larger)."""

MAX_SHARE = 0.5
"""A delta is published only if it is at most half of the full image."""
MIN_SAVING = 4096
"""... and saves at least this many bytes: below it, a target of its own (metadata the
device fetches and a step that can fail) costs more than the download it spares."""


def build_delta(old: bytes, new: bytes) -> bytes:
    """The patch that turns image *old* into image *new* on a device."""
    patch = io.BytesIO()
    detools.create_patch(
        io.BytesIO(old),
        io.BytesIO(new),
        patch,
        compression="heatshrink",
        patch_type="sequential",
        algorithm="bsdiff",
        heatshrink_window_sz2=HEATSHRINK_WINDOW_SZ2,
        heatshrink_lookahead_sz2=HEATSHRINK_LOOKAHEAD_SZ2,
    )
    made = patch.getvalue()
    if apply_delta(old, made, max_size=len(new)) != new:
        raise DeltaError("the device's applier does not rebuild the new image from this patch")
    return made


def apply_delta(old: bytes, delta: bytes, *, max_size: int) -> bytes:
    """The image *delta* makes of *old*, through the device's own applier."""
    made = io.BytesIO()
    source = io.BytesIO(delta)
    delta_patch.apply_patch(
        source.read, lambda offset, n: old[offset : offset + n], len(old), made.write, max_size
    )
    return made.getvalue()


def worth_publishing(delta: bytes, full_size: int) -> bool:
    """Whether a device should be offered *delta* besides the full image of *full_size* bytes."""
    return len(delta) <= full_size * MAX_SHARE and full_size - len(delta) >= MIN_SAVING
