"""Every metadata file on a device's path parses in a 64 KiB MicroPython heap.

A device of one model downloads root, timestamp, snapshot, targets, its
model's role and at most one bin, one file at a time. Each is parsed here by
the real ``micropython`` binary at ``-X heapsize=64K`` with MicroPython's own
``json``, for the two worst cases of a realistic fleet: a model whose role is
full just before its first split, and a model spread over hashed bins, in a
repository with several models (their bins are in the snapshot).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.components import binary
from tests.update_service.release_fixtures import create_repository
from update_service.hashed_bins import LEAF_CAPACITY
from update_service.release_publisher import device_download

pytestmark = pytest.mark.timeout(180)
HEAP = "heapsize=64K"
PARSE = """
import gc, json
gc.collect()
with open({path!r}) as f:
    parsed = json.load(f)
gc.collect()
print(len(parsed["signed"]), gc.mem_free())
"""


def test_a_device_of_each_model_parses_its_metadata_in_64_kib(tmp_path: Path) -> None:
    micropython = binary("micropython")
    models = ("full", "binned", "other-1", "other-2")
    operator = create_repository(tmp_path / "state", models=models)
    for n in range(LEAF_CAPACITY - 1):  # the pointer makes the role full
        operator.publish("full", f"1.0.{n}", n)
    for n in range(2 * LEAF_CAPACITY):
        operator.publish("binned", f"2.{n // 100}.{n % 100}", n)
    for model in ("other-1", "other-2"):
        for n in range(8):
            operator.publish(model, f"3.0.{n}", n)
    repo = operator.store.reader()
    assert repo.bins("model-full") is None and repo.bins("model-binned") is not None
    largest = 0
    for model in ("full", "binned"):
        files = device_download(repo, model)
        assert ("bin" in files) == (model == "binned")
        for name, path in files.items():
            largest = max(largest, path.stat().st_size)
            parsed = subprocess.run(
                [micropython, "-X", HEAP, "-c", PARSE.format(path=str(path))],
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert parsed.returncode == 0, (model, name, path.stat().st_size, parsed.stderr)
            free = int(parsed.stdout.split()[1])
            assert free > 16 << 10, (model, name, free)
    assert largest < 12_000
