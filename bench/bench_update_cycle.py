"""A full refresh-download-install cycle under MicroPython: the smallest heap it completes in,
and its time beside python-tuf's refresh and download of the same target in the same run.

Run from the repository root::

    .venv/bin/python -m bench.bench_update_cycle [--runs N] [--json]

The cycle is ``tests/device_runtime/update_agent_on_device.py``'s ``update`` stage, run
from ROMFS by the real ``micropython`` (a fresh board each time: 1.0.0 confirmed in slot
A, the repository's root): the core's ``UpdateAgent`` refreshes the TUF metadata of a
release-service repository served on loopback, reads the model's pointer and installs
1.1.0 (a 120 KB image, by its delta when one was published) into slot B. Heaps are tried
from 64 KiB up in 8 KiB steps; the first at which the cycle completes is reported, then
the cycle is timed (median of ``--runs``) at that heap
and at 256 KiB, as the board measures it (``ticks_ms`` from opening its flash to the
image pending, the interpreter's start not included). Anchor: python-tuf's ``ngclient``
under CPython, a fresh metadata directory each run, refreshing and downloading the same
image target from the same server (its process start not included). Nothing asserts on
time.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from io import BytesIO
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from device_runtime.core import signed_image
from device_runtime.image_signer import public_point
from device_runtime.ports.cpython.crypto import verify_ecdsa_der
from firmware_images.micropython_bundle import build, romfs_image
from tests.device_runtime.download_server import DownloadServer
from tests.update_service.release_fixtures import Operator, create_repository
from update_service.release_publisher import image_target

REPO = Path(__file__).resolve().parents[1]
HELPERS = REPO / "tests" / "device_runtime"
LAUNCHER = HELPERS / "flash_launcher.py"
AGENT = "tests.device_runtime.update_agent_on_device"
SLOTS = "tests.device_runtime.slots_on_device"
MODEL = "sevenfold-board"
KEY = ec.derive_private_key(0xBE_C7C1E, ec.SECP256R1())
BODY = bytes(range(256)) * 470
"""A 120 KB payload; 1.1.0 changes five bytes of it (so a delta is published too)."""


def _run(flash: Path, board: Path, heap: str, module: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(LAUNCHER), str(flash), heap, module, args[0], str(board),
         *args[1:]],
        cwd=board, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    return result.stdout


def _provisioned(flash: Path, board: Path, operator: Operator) -> list[str]:
    """A board with 1.0.0 confirmed in slot A and the repository's root; the update stage's
    arguments for it."""
    (board / "tuf").mkdir(parents=True)
    image = operator.image(MODEL, "1.0.0", 2, BODY)
    (board / "old.img").write_bytes(image)
    (board / "tuf" / "root.json").write_bytes(operator.root_bytes())
    point = public_point(KEY.public_key()).hex()
    out = _run(flash, board, "64K", SLOTS, "provision", MODEL, point, "-")
    if "SLOTS done" not in out:
        raise SystemExit("the factory stage failed: " + out)
    booted = signed_image.verify(BytesIO(image).read, bytes.fromhex(point), verify_ecdsa_der)
    return [point, "0", "1.0.0", booted.image_hash.hex(), str(booted.size)]


def _cycle(
    flash: Path, scratch: Path, operator: Operator, url: str, heap: str
) -> tuple[bool, float]:
    """One fresh board's update check at *heap*: (completed with 1.1.0 pending, seconds on
    the board's own clock)."""
    board = scratch / f"board-{time.monotonic_ns()}"
    running = _provisioned(flash, board, operator)
    out = _run(flash, board, heap, AGENT, "update", *running, url)
    done = [line for line in out.splitlines() if line.startswith("AGENT done ")]
    shutil.rmtree(board)
    return "AGENT pending 1.1.0" in out, int(done[-1].split()[2]) / 1000 if done else 0.0


def _anchor(operator: Operator, url: str, runs: int) -> float:
    from tuf.ngclient import Updater

    times = []
    for _ in range(runs + 1):
        work = Path(tempfile.mkdtemp(prefix="sevenfold-ngclient-"))
        try:
            (work / "metadata").mkdir()
            (work / "targets").mkdir()
            started = time.perf_counter()
            updater = Updater(metadata_dir=str(work / "metadata"),
                              metadata_base_url=url + "/metadata/",
                              target_dir=str(work / "targets"),
                              target_base_url=url + "/targets/",
                              bootstrap=operator.root_bytes())  # fmt: skip
            updater.refresh()
            info = updater.get_targetinfo(image_target(MODEL, "1.1.0"))
            assert info is not None
            updater.download_target(info)
            times.append(time.perf_counter() - started)
        finally:
            shutil.rmtree(work)
    return statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="mpy", dir="/tmp"))
    try:
        tree = scratch / "tree"
        helpers = [HELPERS / "__init__.py", HELPERS / "slots_on_device.py",
                   HELPERS / "update_agent_on_device.py"]  # fmt: skip
        build(root=REPO, out=tree, extra=helpers)
        flash = scratch / "flash.romfs"
        flash.write_bytes(romfs_image(tree))
        operator = create_repository(scratch / "releases", models=())
        operator.add_model(MODEL, KEY)
        operator.publish(MODEL, "1.0.0", 2, BODY)
        operator.publish(MODEL, "1.1.0", 3, BODY[:60_000] + b"fixed" + BODY[60_005:])
        root = operator.store.repository_dir
        files = {"/" + p.relative_to(root).as_posix(): p.read_bytes()
                 for p in root.rglob("*") if p.is_file()}  # fmt: skip
        with DownloadServer(files) as server:
            scan = {}
            smallest = None
            for kib in range(64, 264, 8):
                ok, _ = _cycle(flash, scratch, operator, server.url, f"{kib}K")
                scan[kib] = ok
                if ok:
                    smallest = kib
                    break
            timed = {}
            for kib in sorted({smallest or 256, 256}):
                times = [_cycle(flash, scratch, operator, server.url, f"{kib}K")
                         for _ in range(options.runs)]  # fmt: skip
                timed[kib] = {"completed": all(ok for ok, _ in times),
                              "median_s": statistics.median(t for _, t in times)}  # fmt: skip
            anchor = _anchor(operator, server.url, options.runs)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    result = {
        "smallest_heap_kib": smallest,
        "scan": scan,
        "timed": timed,
        "python_tuf_refresh_download_s": anchor,
        "ratio_at_256k": anchor / timed[256]["median_s"],
    }
    if options.json:
        print(json.dumps(result, indent=2))
        return
    print(f"smallest heap the cycle completes in: {smallest} KiB (64 KiB: {scan.get(64)})")
    for kib, row in timed.items():
        print(f"  {kib} KiB: completed {row['completed']}, median {row['median_s'] * 1000:.0f} ms")
    print(
        f"python-tuf refresh + download, CPython: {anchor * 1000:.0f} ms;"
        f" ratio (anchor / ours at 256 KiB) {result['ratio_at_256k']:.2f}"
    )


if __name__ == "__main__":
    main()
