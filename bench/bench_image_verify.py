"""Image verify throughput: ours against ``hashlib.sha256`` over the same bytes, and imgtool.

A verify is one SHA-256 pass over the image plus one ECDSA P-256 check, so the
anchor is ``hashlib.sha256`` over the very same bytes in the same run (the
target: ours at >= 0.85 of its speed). Ours reads through a ``read(n)`` that
returns memoryviews of the image (no copies), in chunks of each size given,
and from a file (the CLI's path) beside hashlib reading the same file in the
same chunks. ``imgtool``'s own verify (in-process, ``Image.verify``) is the
second anchor. Within each repeat every variant of a group runs once, in turn. Under the
MicroPython unix port (64 KiB heap, bundle in a ROMFS image as on a board) the
device half of the MicroPython test verifies a 400 KiB image streamed from a
file, beside hashlib over the same file; there the ECDSA check, not hashing,
is most of the time. Medians of --repeats runs.

    .venv/bin/python bench/bench_image_verify.py [--mib 8] [--repeats 7] [--json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives import serialization  # noqa: E402

from device_runtime.core import signed_image  # noqa: E402
from device_runtime.image_signer import sign_image  # noqa: E402
from device_runtime.ports.cpython.crypto import verify_ecdsa_der  # noqa: E402
from firmware_images.micropython_bundle import build, romfs_image  # noqa: E402
from tests.device_runtime.images.cases import KEY, POINT, reader  # noqa: E402

CHUNKS = (4096, 1 << 16, 1 << 20)
MICROPYTHON_IMAGE = 400 * 1024
LAUNCHER = ROOT / "tests" / "device_runtime" / "flash_launcher.py"
DEVICE_MODULE = "tests.device_runtime.images.on_device"


def _median_seconds(calls: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds of each call, timed in turn within every repeat, so that a burst of load
    on the shared machine falls on all of them alike rather than on one."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(spent) for name, spent in times.items()}


def _from_file(path: Path, chunk: int) -> None:
    with path.open("rb") as stream:
        signed_image.verify(stream.read, POINT, verify_ecdsa_der, chunk_size=chunk)


def _hash_file(path: Path, chunk: int) -> None:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while part := stream.read(chunk):
            digest.update(part)


def bench_cpython(data: bytes, path: Path, key_path: Path, repeats: int) -> dict[str, float]:
    """MB/s of each way of verifying *data*, of hashlib over the same bytes, and of imgtool.

    Three groups, each timed on its own: what reads *data* in memory, what reads the file,
    and imgtool (whose copies of the whole image would evict *data* from the cache and slow
    whatever runs next)."""
    chunk = CHUNKS[-1]
    in_memory: dict[str, Callable[[], object]] = {"hashlib": lambda: hashlib.sha256(data).digest()}
    for size in CHUNKS:
        in_memory[f"ours_memory_{size}"] = lambda c=size: signed_image.verify(  # type: ignore[misc]
            reader(data), POINT, verify_ecdsa_der, chunk_size=c
        )
    from_file: dict[str, Callable[[], object]] = {
        "hashlib_file": lambda: _hash_file(path, chunk),
        "ours_file": lambda: _from_file(path, chunk),
    }
    seconds = _median_seconds(in_memory, repeats) | _median_seconds(from_file, repeats)
    imgtool = _imgtool_verify(path, key_path)
    if imgtool is not None:
        seconds |= _median_seconds({"imgtool": imgtool}, repeats)
    return {name: len(data) / 1e6 / spent for name, spent in seconds.items()}


def _imgtool_verify(path: Path, key_path: Path) -> Callable[[], object] | None:
    """imgtool's verify of *path*, in-process (None when imgtool is not installed)."""
    try:
        from imgtool import keys  # type: ignore[import-untyped]
        from imgtool.image import Image, VerifyResult  # type: ignore[import-untyped]
    except ModuleNotFoundError:
        return None
    key = keys.load(str(key_path))
    assert Image.verify(str(path), key)[0] == VerifyResult.OK
    return lambda: Image.verify(str(path), key)


def bench_micropython(directory: Path, repeats: int) -> dict[str, float] | None:
    """MB/s of verify and of hashlib under the MicroPython unix port at 64 KiB, or None."""
    if shutil.which("micropython", path=str(Path(sys.executable).parent)) is None:
        return None
    tree = directory / "bundle"
    extra = [ROOT / "tests" / "device_runtime" / "images" / "on_device.py"]
    build(root=ROOT, out=tree, extra=extra)
    flash = directory / "flash.romfs"
    flash.write_bytes(romfs_image(tree))
    images = directory / "images"
    images.mkdir()
    payload = bytes((i * 31 + i // 997) & 0xFF for i in range(MICROPYTHON_IMAGE))
    image = sign_image(payload, key=KEY, version="1.0.0", security_counter=1)
    (images / "large.bin").write_bytes(image)
    done = subprocess.run(
        [sys.executable, str(LAUNCHER), str(flash), "64K", DEVICE_MODULE, POINT.hex(),
         str(images), str(repeats)],
        cwd=directory, capture_output=True, text=True, check=True, timeout=600,
    )  # fmt: skip
    runs = [line.split()[3:] for line in done.stdout.splitlines() if " timing " in line]
    ours = statistics.median(int(run[1]) for run in runs)
    anchor = statistics.median(int(run[2]) for run in runs)
    return {"ours": len(image) / ours, "hashlib": len(image) / anchor, "image_bytes": len(image)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=8, help="payload size of the CPython image")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    payload = bytes(range(256)) * (args.mib * 4096)
    data = sign_image(payload, key=KEY, version="1.0.0", security_counter=1)
    with tempfile.TemporaryDirectory(prefix="bench-image") as scratch:
        directory = Path(scratch)
        path = directory / "image.bin"
        path.write_bytes(data)
        key_path = directory / "key.pem"
        key_path.write_bytes(
            KEY.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        cpython = bench_cpython(data, path, key_path, args.repeats)
        micropython = bench_micropython(directory, args.repeats)
    ratios = {
        name: rate / cpython["hashlib"]
        for name, rate in cpython.items()
        if name.startswith("ours_m")
    }
    ratios["ours_file_over_hashlib_file"] = cpython["ours_file"] / cpython["hashlib_file"]
    if "imgtool" in cpython:
        ratios["ours_memory_1048576_over_imgtool"] = (
            cpython["ours_memory_1048576"] / cpython["imgtool"]
        )
    if micropython is not None:
        ratios["micropython_ours_over_hashlib"] = micropython["ours"] / micropython["hashlib"]
    report = {
        "image_bytes": len(data),
        "repeats": args.repeats,
        "cpython_mb_per_s": cpython,
        "micropython_64k_mb_per_s": micropython,
        "ratios": ratios,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{len(data)} byte image, median of {args.repeats}; MB/s")
    for name, rate in cpython.items():
        print(f"  {name:<24}{rate:>10.0f}")
    if micropython is None:
        print("  micropython binary not found")
    else:
        print(f"  micropython ours ({micropython['image_bytes']} B){micropython['ours']:>10.1f}")
        print(f"  micropython hashlib      {micropython['hashlib']:>10.1f}")
    for name, ratio in ratios.items():
        print(f"{name}: {ratio:.2f}")


if __name__ == "__main__":
    main()
