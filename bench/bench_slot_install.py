"""Verify-and-install throughput and memory, beside ``hashlib.sha256`` over the same bytes.

Run from the repository root::

    .venv/bin/python -m bench.bench_slot_install [--runs N] [--json]

1. Throughput: ``slot_install.install`` of a signed image (1, 4 and 15 MiB)
   streamed from memory into the CPython port's file-backed flash (in
   /dev/shm where there is one, so the host's disk is not what is timed),
   checked against the TUF length and SHA-256, the image signature (OpenSSL)
   and a software root of trust's counter, read 64 KiB at a time. Anchor, in the same run:
   ``hashlib.sha256`` of the same bytes. The ratio is install throughput over
   the anchor's; the install hashes every byte twice (TUF's SHA-256 of the
   file, the image's own of its signed part), so 0.5 is its ceiling on hashing
   alone.
2. Peak memory: one child process per image size (1 to 255 MiB, streamed from
   a file; the verifier takes nothing larger than 256 MiB) installs it and
   reports its peak RSS (``VmHWM``: ``ru_maxrss`` would keep the parent's
   across ``exec``); the anchor is a child that only
   hashes the same file in the same 4 KiB pieces.

Medians of ``--runs`` runs after a warm-up. Nothing asserts on time.
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
from io import BytesIO
from pathlib import Path
from typing import Any

from bench.result_table import print_rows
from device_runtime.core.image_trust import ImageTrust
from device_runtime.core.slot_install import install, provision
from device_runtime.core.slots import slot_pair
from device_runtime.image_signer import public_point, sign_image
from device_runtime.ports.cpython import crypto
from device_runtime.ports.cpython.block_device import FileBlockDevice
from device_runtime.ports.cpython.storage import DirectoryStore
from device_runtime.rot.software import SoftwareRootOfTrust

MIB = 1 << 20
SIZES = (1, 4, 15)
RSS_SIZES = (1, 16, 64, 255)
"""Up to ``signed_image.MAX_IMAGE_SIZE`` (256 MiB), the largest image the verifier takes."""
MODEL = "bench-board"
CHUNK = 64 * 1024
"""Bytes per read: a CPython device has the memory to spare."""
CHILD = "--child"


def _key() -> Any:
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.derive_private_key(0xBE_4C4, ec.SECP256R1())


def _device(directory: Path, slot_size: int) -> tuple[Any, list[Any], ImageTrust]:
    flash = FileBlockDevice(path=directory / "flash", size=2 * slot_size)
    store = directory / "rot"
    store.mkdir(exist_ok=True)
    rot = SoftwareRootOfTrust.open(store=DirectoryStore(directory=store),
                                   random_bytes=crypto.random_bytes,
                                   sign_es256=crypto.sign_es256)  # fmt: skip
    trust = ImageTrust(public_point(_key().public_key()), crypto.verify_ecdsa_der, rot, CHUNK)
    slots = slot_pair(flash, CHUNK)
    provision(slots, BytesIO(sign_image(b"\x00" * 1024, key=_key(), version="1.0.0",
                                        security_counter=1)).read, trust)  # fmt: skip
    return flash, slots, trust


def _facts(length: int, sha256: bytes) -> dict[str, Any]:
    return {"length": length, "sha256": sha256, "hardware": [MODEL], "model": MODEL}


def _scratch() -> Path:
    shm = Path("/dev/shm")
    return Path(tempfile.mkdtemp(prefix="sevenfold-bench-", dir=shm if shm.is_dir() else None))


def throughput(runs: int) -> list[dict[str, Any]]:
    rows = []
    for mib in SIZES:
        image = sign_image(bytes(mib * MIB - 4096), key=_key(), version="1.1.0",
                           security_counter=2)  # fmt: skip
        digest = hashlib.sha256(image).digest()
        directory = _scratch()
        try:
            flash, slots, trust = _device(directory, (mib + 1) * MIB)
            installs, hashes = [], []
            for run in range(runs + 1):
                started = time.perf_counter()
                install(slots, 0, BytesIO(image).read, trust, **_facts(len(image), digest))
                installed = time.perf_counter() - started
                started = time.perf_counter()
                hashlib.sha256(image).digest()
                hashed = time.perf_counter() - started
                if run:
                    installs.append(installed)
                    hashes.append(hashed)
            flash.close()
        finally:
            shutil.rmtree(directory)
        install_s, hash_s = statistics.median(installs), statistics.median(hashes)
        rows.append({"MiB": mib, "install MB/s": len(image) / install_s / 1e6,
                     "sha256 MB/s": len(image) / hash_s / 1e6,
                     "ratio": hash_s / install_s})  # fmt: skip
    return rows


def _child(mode: str, path: str, size: int) -> None:
    """Install (or only hash) the image in *path*, then print the peak RSS in KiB."""
    image = Path(path)
    with image.open("rb") as source:
        if mode == "hash":
            sha = hashlib.sha256()
            while piece := source.read(4096):
                sha.update(piece)
        else:
            digest = bytes.fromhex(Path(path + ".sha256").read_text())
            _, slots, trust = _device(image.parent, size + MIB)
            install(slots, 0, source.read, trust, **_facts(image.stat().st_size, digest))
    status = Path("/proc/self/status").read_text().split("\n")
    print(next(line.split()[1] for line in status if line.startswith("VmHWM:")))


def peak_memory() -> list[dict[str, Any]]:
    rows = []
    for mib in RSS_SIZES:
        directory = _scratch()
        try:
            path = directory / "image"
            image = sign_image(bytes(mib * MIB - 4096), key=_key(), version="1.1.0",
                               security_counter=2)  # fmt: skip
            path.write_bytes(image)
            Path(str(path) + ".sha256").write_text(hashlib.sha256(image).hexdigest())
            del image
            peaks = {}
            for mode in ("hash", "install"):
                out = subprocess.run(
                    [sys.executable, "-m", "bench.bench_slot_install", CHILD, mode, str(path),
                     str(mib * MIB)],
                    capture_output=True, text=True, check=True,
                )  # fmt: skip
                peaks[mode] = int(out.stdout.split()[-1]) / 1024
        finally:
            shutil.rmtree(directory)
        rows.append({"MiB": mib, "hash peak RSS MiB": peaks["hash"],
                     "install peak RSS MiB": peaks["install"]})  # fmt: skip
    return rows


def main() -> None:
    if sys.argv[1:2] == [CHILD]:
        _child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    result = {"throughput": throughput(options.runs), "peak memory": peak_memory()}
    if options.json:
        print(json.dumps(result, indent=2))
        return
    print_rows(result)


if __name__ == "__main__":
    main()
