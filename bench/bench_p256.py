"""Speed of the pure-Python P-256 on CPython and MicroPython, anchored to OpenSSL.

One run measures all three on the same machine under the same load, so the
ratios mean something even on a busy host: (a) device_runtime.core.p256 under
CPython, (b) the same module under the MicroPython unix port with a capped heap
(a subprocess running a timing script), and (c) ``cryptography`` (OpenSSL) as
the anchor. Each figure is the median of several repeats of a timed batch.
Under MicroPython it also times the field inversion both ways (extended Euclid,
as used, against Fermat's ``pow``) to back that design choice.

    .venv/bin/python bench/bench_p256.py [--repeats 5] [--count 20] [--heap 64K] [--json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from device_runtime.core import p256  # noqa: E402

PRIVATE = bytes.fromhex("c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721")
MESSAGE = b"firmware manifest to be verified"

MICROPYTHON_SCRIPT = """
import sys, time
sys.path.insert(0, {root!r})
from device_runtime.core import p256, p256_points
private = bytes.fromhex({private!r})
message = {message!r}
public = p256.public_key(private)
signature = p256.sign(private, message)
def rates(fn):
    out = []
    for _ in range({repeats}):
        start = time.ticks_us()
        for _ in range({count}):
            fn()
        out.append({count} * 1000000 / time.ticks_diff(time.ticks_us(), start))
    return out
v = rates(lambda: p256.verify(public, message, signature))
s = rates(lambda: p256.sign(private, message))
a = p256_points.GX
e = rates(lambda: p256_points.inverse(a, p256_points.P))
f = rates(lambda: pow(a, p256_points.P - 2, p256_points.P))
print("RESULT", *(",".join(str(x) for x in r) for r in (v, s, e, f)))
"""


def _rates(fn: Callable[[], object], repeats: int, count: int) -> list[float]:
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(count):
            fn()
        out.append(count / (time.perf_counter() - start))
    return out


def _micropython() -> str | None:
    beside = Path(sys.executable).parent / "micropython"
    return str(beside) if beside.exists() else shutil.which("micropython")


def bench_cpython(repeats: int, count: int) -> dict[str, float]:
    public = p256.public_key(PRIVATE)
    signature = p256.sign(PRIVATE, MESSAGE)
    verify = _rates(lambda: p256.verify(public, MESSAGE, signature), repeats, count)
    sign = _rates(lambda: p256.sign(PRIVATE, MESSAGE), repeats, count)
    return {"verify_per_s": statistics.median(verify), "sign_per_s": statistics.median(sign)}


def bench_micropython(repeats: int, count: int, heap: str) -> dict[str, float] | None:
    binary = _micropython()
    if binary is None:
        return None
    script = MICROPYTHON_SCRIPT.format(
        root=str(ROOT), private=PRIVATE.hex(), message=MESSAGE, repeats=repeats, count=count
    )
    done = subprocess.run(
        [binary, "-X", f"heapsize={heap}", "-c", script],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    keys = ("verify_per_s", "sign_per_s", "inverse_euclid_per_s", "inverse_pow_per_s")
    columns = line.split(" ")[1:]
    return {
        key: statistics.median(float(x) for x in column.split(","))
        for key, column in zip(keys, columns, strict=True)
    }


def bench_openssl(repeats: int, count: int) -> dict[str, float]:
    key = ec.derive_private_key(int.from_bytes(PRIVATE, "big"), ec.SECP256R1())
    public = key.public_key()
    raw = p256.sign(PRIVATE, MESSAGE)
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    algorithm = ec.ECDSA(hashes.SHA256())
    verify = _rates(lambda: public.verify(der, MESSAGE, algorithm), repeats, count)
    sign = _rates(lambda: key.sign(MESSAGE, algorithm), repeats, count)
    return {"verify_per_s": statistics.median(verify), "sign_per_s": statistics.median(sign)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--count", type=int, default=20, help="operations per timed batch")
    parser.add_argument("--heap", default="64K", help="MicroPython heap size (-X heapsize)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    anchor = bench_openssl(args.repeats, args.count * 50)
    results: dict[str, dict[str, float] | None] = {
        "openssl": anchor,
        "p256_cpython": bench_cpython(args.repeats, args.count),
        "p256_micropython": bench_micropython(args.repeats, args.count, args.heap),
    }
    ratios: dict[str, float] = {}
    for name in ("p256_cpython", "p256_micropython"):
        row = results[name]
        if row is None:
            continue
        for op in ("verify_per_s", "sign_per_s"):
            ratios[f"openssl_over_{name}_{op[:-6]}"] = anchor[op] / row[op]
    micro = results["p256_micropython"]
    if micro is not None:
        ratios["micropython_inverse_euclid_over_pow"] = (
            micro["inverse_euclid_per_s"] / micro["inverse_pow_per_s"]
        )
    report = {
        "repeats": args.repeats,
        "count": args.count,
        "micropython_heap": args.heap,
        "results": results,
        "ratios": ratios,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"median of {args.repeats} repeats; MicroPython heap {args.heap}")
    print(f"{'implementation':<20}{'verify/s':>12}{'ms/verify':>12}{'sign/s':>12}{'ms/sign':>12}")
    for name, row in results.items():
        if row is None:
            print(f"{name:<20}{'micropython binary not found':>48}")
            continue
        v, s = row["verify_per_s"], row["sign_per_s"]
        print(f"{name:<20}{v:>12.1f}{1000 / v:>12.3f}{s:>12.1f}{1000 / s:>12.3f}")
    for name, ratio in ratios.items():
        print(f"{name}: {ratio:.1f}x")


if __name__ == "__main__":
    main()
