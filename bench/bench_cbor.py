"""How the device CBOR codec compares with cbor2 on one protocol-sized message.

The anchor is cbor2 (C extension) in the same CPython process; the same
message is then timed under MicroPython with a 64 KiB heap, loading the codec
as mpy-cross bytecode the way a device does. Run from the repository root::

    .venv/bin/python -m bench.bench_cbor [--json]

Numbers are medians of several repeats, in microseconds per operation. Nothing
here asserts on time; the ratios are for reading.
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cbor2

from device_runtime.core.cbor import dumps, loads
from firmware_images.micropython_bundle import build

REPO = Path(__file__).resolve().parents[1]
REPEATS = 7
CPYTHON_LOOPS = 2000
MICROPYTHON_LOOPS = 200

MESSAGE: dict[str, Any] = {
    "v": 1,
    "type": "attestation-evidence",
    "device": "sf-0001-a3f9c2",
    "seq": 48213,
    "time": 1795000000,
    "nonce": bytes(range(64)),
    "measurements": [[0, "bootloader", 3], [1, "firmware", 17], {"slot": -1}],
    "status": "ok",
}

MICROPYTHON_SCRIPT = """
import gc, json, sys, time
sys.path.insert(0, {tree!r})
from device_runtime.core.cbor import dumps, loads
data = bytes.fromhex({hex!r})
message = loads(data)
assert dumps(message) == data
def timed(step):
    gc.collect()
    start = time.ticks_us()
    for _ in range({loops}):
        step()
    return time.ticks_diff(time.ticks_us(), start) / {loops}
encode = []
decode = []
for _ in range({repeats}):
    encode.append(timed(lambda: dumps(message)))
    decode.append(timed(lambda: loads(data)))
print(json.dumps({{"encode": encode, "decode": decode}}))
"""


def per_call_us(step: Callable[[], object], loops: int) -> float:
    start = time.perf_counter()
    for _ in range(loops):
        step()
    return (time.perf_counter() - start) / loops * 1e6


def median_us(step: Callable[[], object], loops: int) -> float:
    return statistics.median(per_call_us(step, loops) for _ in range(REPEATS))


def cpython_timings(data: bytes) -> dict[str, float]:
    return {
        "ours_encode_us": median_us(lambda: dumps(MESSAGE), CPYTHON_LOOPS),
        "ours_decode_us": median_us(lambda: loads(data), CPYTHON_LOOPS),
        "cbor2_encode_us": median_us(lambda: cbor2.dumps(MESSAGE, canonical=True), CPYTHON_LOOPS),
        "cbor2_decode_us": median_us(lambda: cbor2.loads(data), CPYTHON_LOOPS),
    }


def micropython_timings(data: bytes) -> dict[str, float] | None:
    micropython = shutil.which("micropython", path=str(Path(sys.executable).parent))
    micropython = micropython or shutil.which("micropython")
    if micropython is None:
        return None
    with tempfile.TemporaryDirectory() as tree:
        build(root=REPO, out=Path(tree))
        script = MICROPYTHON_SCRIPT.format(
            tree=tree, hex=data.hex(), loops=MICROPYTHON_LOOPS, repeats=REPEATS
        )
        result = subprocess.run(
            [micropython, "-X", "heapsize=64K", "-c", script],
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
    samples = json.loads(result.stdout.strip().splitlines()[-1])
    return {
        "micropython_encode_us": statistics.median(samples["encode"]),
        "micropython_decode_us": statistics.median(samples["decode"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    data = dumps(MESSAGE)
    if data != cbor2.dumps(MESSAGE, canonical=True):
        raise SystemExit("the codecs disagree on the message; timings would be meaningless")
    report: dict[str, Any] = {"message_bytes": len(data), "repeats": REPEATS}
    report.update(cpython_timings(data))
    report["encode_ratio_ours_to_cbor2"] = report["ours_encode_us"] / report["cbor2_encode_us"]
    report["decode_ratio_ours_to_cbor2"] = report["ours_decode_us"] / report["cbor2_decode_us"]
    on_micropython = micropython_timings(data)
    if on_micropython is not None:
        report.update(on_micropython)
        report["micropython_encode_ratio_to_cpython"] = (
            report["micropython_encode_us"] / report["ours_encode_us"]
        )
        report["micropython_decode_ratio_to_cpython"] = (
            report["micropython_decode_us"] / report["ours_decode_us"]
        )

    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
        return
    print(f"message: {len(data)} bytes, medians of {REPEATS} repeats, microseconds per call")
    print(f"{'':28}{'encode':>10}{'decode':>10}")
    rows = [("ours (CPython)", "ours"), ("cbor2 (CPython, anchor)", "cbor2")]
    for label, key in rows:
        print(f"{label:28}{report[key + '_encode_us']:10.2f}{report[key + '_decode_us']:10.2f}")
    if on_micropython is not None:
        print(
            f"{'ours (MicroPython, 64K)':28}"
            f"{report['micropython_encode_us']:10.2f}{report['micropython_decode_us']:10.2f}"
        )
    print(
        f"ours / cbor2: encode x{report['encode_ratio_ours_to_cbor2']:.1f}, "
        f"decode x{report['decode_ratio_ours_to_cbor2']:.1f}"
    )
    if on_micropython is not None:
        print(
            "MicroPython / CPython (ours): "
            f"encode x{report['micropython_encode_ratio_to_cpython']:.1f}, "
            f"decode x{report['micropython_decode_ratio_to_cpython']:.1f}"
        )
    else:
        print("micropython not found: MicroPython timings skipped")


if __name__ == "__main__":
    main()
