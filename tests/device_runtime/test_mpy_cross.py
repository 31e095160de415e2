"""Every module meant for MicroPython compiles with mpy-cross, the compiler firmware uses.

CPython accepts syntax MicroPython's compiler refuses; this catches it per
module, whether or not a portable test imports that module yet. Output goes
to a temporary folder so no .mpy file is left in the tree.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from firmware_images.micropython_bundle import compile_module, portable_sources

REPO = Path(__file__).resolve().parents[2]
MPY_HEADER = b"M"

MODULES = portable_sources(REPO)


@pytest.mark.parametrize("source", MODULES, ids=[str(p.relative_to(REPO)) for p in MODULES])
def test_module_compiles_with_mpy_cross(source: Path, tmp_path: Path) -> None:
    target = compile_module(root=REPO, source=source, out=tmp_path)
    assert target.read_bytes()[:1] == MPY_HEADER


def test_the_codec_is_among_the_compiled_modules() -> None:
    assert REPO / "device_runtime" / "core" / "cbor.py" in MODULES
