"""The device core's TUF client against the TUF conformance suite, on CPython and MicroPython.

``scripts/bootstrap.sh`` (``ensure_tuf_conformance``) puts the suite at its
pinned commit in ``.tuf-conformance`` and its own pinned requirements in
``.venv-conformance``. Each entrypoint must fail no test that python-tuf's
ngclient passes on the same commit; python-tuf runs in the same session as
the anchor (its one known failure is in the suite's own xfail list). The
MicroPython client runs from a ROMFS image with the heap in
``MICROPYTHON_HEAP``, a step over the smallest that passed the whole suite
(80K): MicroPython's collector scans the stack conservatively, so a run's peak
varies a little. At 64 KiB the client must refuse with ``too-large`` and store
nothing it has not trusted (docs/tuf-client.md).
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.components import binary
from tests.strict_mode import missing

REPO = Path(__file__).resolve().parents[2]
SUITE = REPO / ".tuf-conformance"
VENV_PYTHON = REPO / ".venv-conformance" / "bin" / "python"
MICROPYTHON_HEAP = "88K"

pytestmark = [pytest.mark.timeout(1200), pytest.mark.xdist_group("tuf-conformance")]


def _conformance(entrypoint: str, report: Path, heap: str = "") -> dict[str, str]:
    """Every suite test's outcome for *entrypoint*, by test id."""
    if not (SUITE / "tuf_conformance").is_dir() or not VENV_PYTHON.exists():
        missing("tuf-conformance", ". scripts/bootstrap.sh; ensure_tuf_conformance")
    env = dict(os.environ, SEVENFOLD_PYTHON=sys.executable)
    if heap:
        env["SEVENFOLD_TUF_HEAP"] = heap
    result = subprocess.run(
        [
            str(VENV_PYTHON), "-m", "pytest", "tuf_conformance", "-q", "-p", "no:cacheprovider",
            "--entrypoint", entrypoint, "--json-report", f"--json-report-file={report}",
        ],
        cwd=SUITE, env=env, capture_output=True, text=True, timeout=1100, check=False,
    )  # fmt: skip
    assert report.exists(), result.stdout[-3000:] + result.stderr[-3000:]
    tests = json.loads(report.read_text())["tests"]
    outcomes = {test["nodeid"]: test["outcome"] for test in tests}
    assert len(outcomes) > 100, result.stdout[-3000:]
    return outcomes


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """python-tuf's ngclient on the same suite commit: what a conformant client passes."""
    entrypoint = f"{VENV_PYTHON} {SUITE}/clients/python-tuf/python_tuf.py"
    return _conformance(entrypoint, tmp_path_factory.mktemp("reference") / "report.json")


def _assert_as_good_as(outcomes: dict[str, str], reference: dict[str, str]) -> None:
    assert set(outcomes) == set(reference)
    worse = sorted(t for t, o in outcomes.items() if o != "passed" and reference[t] == "passed")
    assert not worse, worse


def test_cpython_client_passes_what_python_tuf_passes(
    reference: dict[str, str], tmp_path: Path
) -> None:
    outcomes = _conformance(str(REPO / "scripts" / "tuf-client-cpython"), tmp_path / "r.json")
    _assert_as_good_as(outcomes, reference)


def test_micropython_client_passes_what_python_tuf_passes(
    reference: dict[str, str], tmp_path: Path
) -> None:
    entrypoint = str(REPO / "scripts" / "tuf-client-micropython")
    outcomes = _conformance(entrypoint, tmp_path / "r.json", MICROPYTHON_HEAP)
    _assert_as_good_as(outcomes, reference)


@pytest.fixture
def static_repository() -> Iterator[tuple[Path, str]]:
    """The suite's tuf-on-ci repository served on loopback: its folder and base URL."""
    folder = SUITE / "tuf_conformance" / "static_data" / "tuf-on-ci-0.11"
    if not folder.is_dir():
        missing("tuf-conformance", ". scripts/bootstrap.sh; ensure_tuf_conformance")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_micropython_at_64k_refuses_cleanly_and_stores_only_trusted_files(
    static_repository: tuple[Path, str], tmp_path: Path
) -> None:
    folder, url = static_repository
    metadata, targets = tmp_path / "metadata", tmp_path / "targets"
    metadata.mkdir()
    targets.mkdir()
    client = [str(REPO / "scripts" / "tuf-client-micropython"), "--metadata-dir", str(metadata)]
    env = dict(os.environ, SEVENFOLD_PYTHON=sys.executable, SEVENFOLD_TUF_HEAP="64K")
    init = [*client, "init", str(folder / "initial_root.json")]
    assert subprocess.run(init, env=env, timeout=300, check=False).returncode == 0
    when = (folder / "faketime").read_text().strip()
    download = [
        binary("faketime"), when, *client, "--metadata-url", f"{url}/metadata",
        "--target-name", (folder / "targetpath").read_text().strip(),
        "--target-dir", str(targets), "--target-base-url", f"{url}/targets", "download",
    ]  # fmt: skip
    result = subprocess.run(
        download, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 1 and "too-large" in result.stderr, result.stderr
    published = {p.name.split(".", 1)[1] for p in (folder / "metadata").glob("*.*.json")}
    for stored in metadata.iterdir():
        assert stored.name in {"root.json", "timestamp.json"} | published, stored.name
        same = [p for p in (folder / "metadata").iterdir() if p.read_bytes() == stored.read_bytes()]
        assert same or stored.name == "root.json", f"{stored.name} is not the repository's"
    assert list(targets.iterdir()) == []
