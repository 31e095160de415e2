"""Delta sizes against the full image, zstd --patch-from and xdelta3, and the device's apply time.

Cases, each a pair of MCUboot images signed by ``imgtool`` (what a release is):

* ``python-source``: the device runtime's sources in a ROMFS image (about 290 KB),
  1.0.0 and a 1.1.0 with a minor step (``tests/update_service/firmware_steps.py``);
* ``python-bytecode``: the same step in the mpy-cross bytecode bundle (about 70 KB);
* ``c-dynamic`` / ``c-static``: zlib's ``gun.c`` example (Debian ``zlib1g-dev``) built
  with gcc -O2 and stripped, dynamically linked (the application alone) and statically
  (with libc and zlib, as firmware is linked), before and after a one-line change
  (it learns the ``_gz`` suffix), which moves every function after it;
* ``--pair OLD NEW`` adds any two images, e.g. the sample firmware's releases.

Per case: our delta (``update_service.deltas.build_delta``: detools, sequential,
heatshrink with a 4 KiB window and 2 KiB back-references), the same with detools'
default heatshrink parameters (256 bytes, 128), detools with LZMA (what the same
library makes when the device need not decode it), ``zstd -19 --patch-from`` and
``xdelta3 -9 -e -s``, all made in the same run; then the device's apply time under
CPython and under MicroPython at 64 KiB (median of the repeats) against a plain
chunked copy of the full image, file to file, and detools' own ``apply_patch`` on
CPython. Run from the repository root::

    .venv/bin/python -m bench.bench_delta [--repeats 5] [--pair OLD NEW] [--json]
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import detools  # type: ignore[import-untyped]

from firmware_images.micropython_bundle import build
from tests.update_service.firmware_steps import bytecode_firmware, source_firmware
from update_service.deltas import apply_delta, build_delta, worth_publishing

REPO = Path(__file__).resolve().parents[1]
GUN_C = Path("/usr/share/doc/zlib1g-dev/examples/gun.c")
GUN_LINE = '                    strcmp(*argv + len - 3, "-gz") == 0)\n'
GUN_CHANGE = (
    '                    strcmp(*argv + len - 3, "-gz") == 0 ||\n'
    '                    strcmp(*argv + len - 3, "_gz") == 0)\n'
)
SLOT_SIZE = 0x100000
COPY_CHUNK = 1024

MICROPYTHON_SCRIPT = """
import gc, json, sys, time
sys.path.insert(0, {tree!r})
from device_runtime.core.delta_patch import CHUNK, apply_patch
old_path, patch_path, new_path, full_path = {paths!r}
import os
old_size = os.stat(old_path)[6]
def applied():
    with open(old_path, "rb") as old, open(patch_path, "rb") as patch, open(new_path, "wb") as new:
        def read_at(offset, n):
            old.seek(offset)
            return old.read(n)
        return apply_patch(patch.read, read_at, old_size, new.write, {slot})
def copied():
    with open(full_path, "rb") as full, open(new_path, "wb") as new:
        while True:
            chunk = full.read(CHUNK)
            if not chunk:
                return
            new.write(chunk)
def timed(step):
    gc.collect()
    start = time.ticks_us()
    step()
    return time.ticks_diff(time.ticks_us(), start) / 1000
apply_ms = [timed(applied) for _ in range({repeats})]
copy_ms = [timed(copied) for _ in range({repeats})]
gc.collect()
print(json.dumps({{"apply": apply_ms, "copy": copy_ms, "free": gc.mem_free()}}))
"""


def tool(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        sys.exit(f"{name} is missing: apt-get install zstd xdelta3 zlib1g-dev build-essential;"
                 " pip install -e '.[dev]'")  # fmt: skip
    return found


def run(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True, timeout=600)


def signed(work: Path, key: Path, version: str, payload: bytes) -> bytes:
    raw = work / f"payload-{version}.bin"
    raw.write_bytes(payload)
    image = work / f"image-{version}.img"
    run(tool("imgtool"), "sign", "-k", str(key), "--pad-header", "-H", "0x200", "-v", version,
        "-s", "1", "--align", "4", "-S", str(SLOT_SIZE), str(raw), str(image))  # fmt: skip
    return image.read_bytes()


def gun_binaries(work: Path, *, static: bool) -> tuple[bytes, bytes]:
    source = GUN_C.read_text(encoding="utf-8")
    if source.count(GUN_LINE) != 1:
        sys.exit(f"{GUN_C} is not the gun.c this benchmark changes")
    built = []
    for name, text in (("gun-1", source), ("gun-2", source.replace(GUN_LINE, GUN_CHANGE))):
        (work / f"{name}.c").write_text(text, encoding="utf-8")
        flags = ["-static"] if static else []
        run(tool("gcc"), "-O2", "-s", *flags, "-o", str(work / name), str(work / f"{name}.c"),
            "-lz")  # fmt: skip
        built.append((work / name).read_bytes())
    return built[0], built[1]


def cases(work: Path, pairs: list[tuple[Path, Path]]) -> dict[str, tuple[bytes, bytes]]:
    key = work / "key.pem"
    run(tool("imgtool"), "keygen", "-k", str(key), "-t", "ecdsa-p256")
    payloads = {
        "python-source": (source_firmware(work / "s1", stepped=False),
                          source_firmware(work / "s2", stepped=True)),
        "python-bytecode": (bytecode_firmware(work / "b1", stepped=False),
                            bytecode_firmware(work / "b2", stepped=True)),
        "c-dynamic": gun_binaries(work, static=False),
        "c-static": gun_binaries(work, static=True),
    }  # fmt: skip
    made = {}
    for name, (old, new) in payloads.items():
        folder = work / name
        folder.mkdir()
        made[name] = (signed(folder, key, "1.0.0", old), signed(folder, key, "1.1.0", new))
    for old_path, new_path in pairs:
        made[f"{old_path.name}->{new_path.name}"] = (old_path.read_bytes(), new_path.read_bytes())
    return made


def median_ms(step: Callable[[], object], repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def external_delta(work: Path, old: bytes, new: bytes) -> dict[str, int]:
    (work / "old").write_bytes(old)
    (work / "new").write_bytes(new)
    run(tool("zstd"), "-q", "-f", "-19", "--patch-from=" + str(work / "old"), str(work / "new"),
        "-o", str(work / "new.zst"))  # fmt: skip
    run(tool("xdelta3"), "-e", "-9", "-f", "-s", str(work / "old"), str(work / "new"),
        str(work / "new.xd3"))  # fmt: skip
    return {
        "zstd_bytes": (work / "new.zst").stat().st_size,
        "xdelta3_bytes": (work / "new.xd3").stat().st_size,
        "detools_lzma_bytes": len(detools_patch(old, new, compression="lzma")),
        "heatshrink_default_bytes": len(detools_patch(old, new, compression="heatshrink")),
    }


def detools_patch(old: bytes, new: bytes, **options: object) -> bytes:
    """A patch with detools' defaults but for *options*."""
    patch = io.BytesIO()
    detools.create_patch(io.BytesIO(old), io.BytesIO(new), patch, **options)
    return patch.getvalue()


def copy_file(source: Path, target: Path) -> None:
    with source.open("rb") as full, target.open("wb") as out:
        while chunk := full.read(COPY_CHUNK):
            out.write(chunk)


def cpython_apply(
    work: Path, old: bytes, new: bytes, delta: bytes, repeats: int
) -> dict[str, float]:
    (work / "full").write_bytes(new)

    def library() -> None:
        detools.apply_patch(io.BytesIO(old), io.BytesIO(delta), io.BytesIO())

    return {
        "cpython_apply_ms": median_ms(lambda: apply_delta(old, delta, max_size=SLOT_SIZE), repeats),
        "cpython_detools_apply_ms": median_ms(library, repeats),
        "cpython_copy_ms": median_ms(lambda: copy_file(work / "full", work / "copy"), repeats),
    }


def micropython_apply(work: Path, tree: Path, old: bytes, new: bytes, delta: bytes,
                      repeats: int) -> dict[str, float]:  # fmt: skip
    paths = [work / "old.img", work / "delta", work / "slot.img", work / "full.img"]
    for path, data in zip(paths, (old, delta, b"", new), strict=True):
        path.write_bytes(data)
    script = MICROPYTHON_SCRIPT.format(
        tree=str(tree), paths=[str(p) for p in paths], slot=SLOT_SIZE, repeats=repeats
    )
    result = subprocess.run([tool("micropython"), "-X", "heapsize=64K", "-c", script],
                            capture_output=True, text=True, timeout=600, check=True)  # fmt: skip
    if paths[2].read_bytes() != new:
        raise AssertionError("MicroPython's copy step left another image")
    samples = json.loads(result.stdout.strip().splitlines()[-1])
    return {
        "micropython_apply_ms": statistics.median(samples["apply"]),
        "micropython_copy_ms": statistics.median(samples["copy"]),
        "micropython_free_after": samples["free"],
    }


def measure(
    name: str, old: bytes, new: bytes, work: Path, tree: Path, repeats: int
) -> dict[str, Any]:
    folder = work / ("measure-" + name.replace("/", "_"))
    folder.mkdir()
    start = time.perf_counter()
    delta = build_delta(old, new)
    build_s = time.perf_counter() - start
    row: dict[str, Any] = {
        "case": name,
        "old_bytes": len(old),
        "full_bytes": len(new),
        "delta_bytes": len(delta),
        "smaller_percent": 100 * (1 - len(delta) / len(new)),
        "published": worth_publishing(delta, len(new)),
        "build_s": build_s,
    }
    row.update(external_delta(folder, old, new))
    row.update(cpython_apply(folder, old, new, delta, repeats))
    row.update(micropython_apply(folder, tree, old, new, delta, repeats))
    return row


def report(rows: list[dict[str, Any]]) -> None:
    print("| case | full | ours (heatshrink 12/11) | smaller | published |"
          " heatshrink 8/7 (detools' default) | detools+lzma | zstd -19 --patch-from |"
          " xdelta3 -9 |")  # fmt: skip
    print("|---|---:|---:|---:|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['case']} | {r['full_bytes']:,} | {r['delta_bytes']:,} |"
              f" {r['smaller_percent']:.2f}% | {'yes' if r['published'] else 'no'} |"
              f" {r['heatshrink_default_bytes']:,} | {r['detools_lzma_bytes']:,} |"
              f" {r['zstd_bytes']:,} | {r['xdelta3_bytes']:,} |")  # fmt: skip
    print()
    print("| case | build s | CPython apply ms | detools apply ms | CPython copy ms |"
          " MicroPython apply ms | MicroPython copy ms | apply/copy (MicroPython) |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        ratio = r["micropython_apply_ms"] / r["micropython_copy_ms"]
        print(f"| {r['case']} | {r['build_s']:.2f} | {r['cpython_apply_ms']:.1f} |"
              f" {r['cpython_detools_apply_ms']:.1f} | {r['cpython_copy_ms']:.1f} |"
              f" {r['micropython_apply_ms']:.1f} | {r['micropython_copy_ms']:.1f} |"
              f" {ratio:.2f} |")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--pair", nargs=2, type=Path, action="append", default=[],
                        metavar=("OLD", "NEW"), help="two more images to compare")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-delta-") as folder:
        work = Path(folder)
        tree = work / "bytecode"
        build(root=REPO, out=tree)
        rows = [measure(name, old, new, work, tree, args.repeats)
                for name, (old, new) in cases(work, args.pair).items()]  # fmt: skip
    if args.json:
        print(json.dumps({"repeats": args.repeats, "cases": rows}, indent=2))
    else:
        report(rows)


if __name__ == "__main__":
    main()
