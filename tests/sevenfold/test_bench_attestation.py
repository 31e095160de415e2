"""The end-to-end attestation benchmark, run small, so that it keeps working.

``bench/bench_attestation.py`` starts a real server, provisions devices through
the factory route and has them all attest at once over the recovery listener;
its figures are recorded in ``docs/benchmarks.md``. This runs it with a
handful of devices and checks what must hold on any machine: every device
attested and passed, each run reports its figures, and the anchor ran. It
asserts nothing about speed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.components import binary

pytestmark = [pytest.mark.timeout(120), pytest.mark.xdist_group("fleet-server")]

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("kind", "devices", "repeats"), [("dice", 10, 2), ("software", 4, 1)])
def test_the_attestation_benchmark_runs_small(kind: str, devices: int, repeats: int) -> None:
    binary("mosquitto")
    done = subprocess.run(
        [sys.executable, "-m", "bench.bench_attestation", "--devices", str(devices),
         "--repeats", str(repeats), "--kind", kind, "--json"],
        cwd=REPO, capture_output=True, text=True, timeout=100, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["kind"] == kind and report["devices"] == devices
    assert len(report["runs"]) == repeats
    for number, run in enumerate(report["runs"], 1):
        assert run["boot"] == number
        assert run["attested"] == devices
        assert sum(run["verdicts"].values()) == devices
        assert set(run["verdicts"]) <= {"affirming", "warning"}
        assert run["lost"] == 0 and not run["errors"]
        assert run["latency_ms"]["p99_ms"] >= run["evidence_latency_ms"]["p99_ms"] > 0
        assert run["server_cpu_s"] >= 0 and run["token_cpu_ms"] > 0
    assert report["anchor"]["raw_verify_per_s"] > 0
    assert report["median"]["ratio_attestations_to_verifies"] > 0
    assert "provisioned" in done.stderr  # the progress lines
