"""The TUF conformance suite's pass counts and wall times: python-tuf beside the device client.

Run from the repository root, after ``. scripts/bootstrap.sh; ensure_tuf_conformance``::

    .venv/bin/python -m bench.bench_tuf_conformance [--heaps 64K,96K] [--json]

Anchor, in the same run: python-tuf's ngclient (``clients/python-tuf`` of the
suite) on the same commit. Then ``scripts/tuf-client-cpython`` and
``scripts/tuf-client-micropython`` at each heap in ``--heaps``. Each line gives
passed and failed tests, the wall time of the whole suite and its ratio to the
anchor's. Nothing asserts; ``tests/device_runtime/test_tuf_conformance.py``
does.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SUITE = REPO / ".tuf-conformance"
VENV_PYTHON = REPO / ".venv-conformance" / "bin" / "python"


def run_suite(entrypoint: str, heap: str = "") -> dict[str, Any]:
    """Outcome counts and wall time of one whole suite run for *entrypoint*."""
    env = dict(os.environ, SEVENFOLD_PYTHON=sys.executable)
    if heap:
        env["SEVENFOLD_TUF_HEAP"] = heap
    with tempfile.TemporaryDirectory() as work:
        report = Path(work) / "report.json"
        started = time.monotonic()
        subprocess.run(
            [
                str(VENV_PYTHON), "-m", "pytest", "tuf_conformance", "-q", "-p", "no:cacheprovider",
                "--entrypoint", entrypoint, "--json-report", f"--json-report-file={report}",
            ],
            cwd=SUITE, env=env, capture_output=True, timeout=3600, check=False,
        )  # fmt: skip
        seconds = time.monotonic() - started
        summary = json.loads(report.read_text())["summary"]
    return {
        "passed": summary.get("passed", 0),
        "failed": summary.get("failed", 0) + summary.get("error", 0),
        "seconds": round(seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--heaps", default="64K,96K", help="MicroPython heaps, comma-separated")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not VENV_PYTHON.exists():
        sys.exit("no .venv-conformance: run . scripts/bootstrap.sh; ensure_tuf_conformance")
    rows = {"python-tuf": run_suite(f"{VENV_PYTHON} {SUITE}/clients/python-tuf/python_tuf.py")}
    rows["cpython"] = run_suite(str(REPO / "scripts" / "tuf-client-cpython"))
    for heap in args.heaps.split(","):
        rows[f"micropython {heap}"] = run_suite(
            str(REPO / "scripts" / "tuf-client-micropython"), heap
        )
    anchor = rows["python-tuf"]["seconds"]
    for row in rows.values():
        row["time_ratio"] = round(row["seconds"] / anchor, 2)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    for name, row in rows.items():
        print(
            f"{name:18} {row['passed']:4} passed {row['failed']:4} failed "
            f"{row['seconds']:7.1f} s  x{row['time_ratio']} of python-tuf"
        )


if __name__ == "__main__":
    main()
