"""A publisher killed at any write leaves the repository a client can use; two never interleave.

Each kill is a real SIGKILL of a real publisher process, before each of its
file writes in turn, so every state a crash can leave on disk is tried. The
judge is python-tuf's own client, both a fresh one and one that had already
seen the state before the publish (which checks rollback too): it must
refresh and find the previous release or the new one, never an error, and the
next publish must go through.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from tuf.ngclient import Updater

from tests.update_service.file_fetcher import METADATA, TARGETS, DirectoryFetcher
from tests.update_service.release_fixtures import create_repository
from update_service.hashed_bins import LEAF_CAPACITY
from update_service.release_publisher import list_releases
from update_service.release_store import ReleaseStore

pytestmark = pytest.mark.timeout(240)
REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}
BODY = bytes(range(256)) * 64
"""16 KiB of firmware: large enough that a delta from the previous release is published."""


def client(repository: Path, directory: Path, root: bytes) -> Updater:
    directory.mkdir(parents=True, exist_ok=True)
    return Updater(
        metadata_dir=str(directory),
        metadata_base_url=METADATA,
        target_dir=str(directory),
        target_base_url=TARGETS,
        fetcher=DirectoryFetcher(repository),
        bootstrap=root,
    )


def seen_release(repository: Path, directory: Path, root: bytes) -> str:
    """The current release a client finds, after checking the image's bytes."""
    updater = client(repository, directory, root)
    updater.refresh()
    pointer = updater.get_targetinfo("board-a/current.json")
    assert pointer is not None
    image = updater.get_targetinfo(pointer.custom["image"])
    assert image is not None
    updater.download_target(image, str(directory / "image"))
    for delta in pointer.custom["deltas"].values():
        info = updater.get_targetinfo(delta)
        assert info is not None
        updater.download_target(info, str(directory / "delta"))
    return str(pointer.custom["version"])


def served_files(repository: Path) -> dict[Path, bytes]:
    """Every file of the repository by name, but ``timestamp.json`` (the one replaced in place)."""
    return {
        path: path.read_bytes()
        for path in repository.rglob("*")
        if path.is_file() and path.name != "timestamp.json"
    }


def run_publisher(state: Path, image: Path, kill_at: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.update_service.publish_until_killed",
         str(state), str(image), "board-a", str(kill_at)],
        cwd=REPO, env=ENV, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.mark.parametrize("scenario", ["with a delta", "re-binning the model"])
def test_a_publisher_killed_before_any_write_leaves_a_consistent_repository(
    tmp_path: Path, scenario: str
) -> None:
    operator = create_repository(tmp_path / "pristine")
    if scenario == "with a delta":
        operator.publish("board-a", "1.0.0", 1, BODY + b"v1.0")
        previous, body = "1.0.0", BODY + b"v1.1"
    else:  # the next publish overflows the model role and spreads it over bins
        for n in range(LEAF_CAPACITY - 1):
            operator.publish("board-a", f"1.0.{n}", 1)
        previous, body = f"1.0.{LEAF_CAPACITY - 2}", b""
    root = operator.root_bytes()
    seen = tmp_path / "seen-before"
    assert seen_release(operator.store.repository_dir, seen, root) == previous
    image = tmp_path / "next.img"
    image.write_bytes(operator.image("board-a", "1.1.0", 2, body))

    kill_at = 1
    while True:
        state = tmp_path / f"killed-{kill_at}"
        shutil.copytree(tmp_path / "pristine", state, symlinks=True)
        died = run_publisher(state, image, kill_at)
        repository = ReleaseStore(state).repository_dir
        fresh = seen_release(repository, tmp_path / f"fresh-{kill_at}", root)
        again = tmp_path / f"seen-{kill_at}"
        shutil.copytree(seen, again)
        assert seen_release(repository, again, root) == fresh
        if died.returncode == 0:
            assert fresh == "1.1.0"
            writes = int(died.stdout)
            break
        assert died.returncode == -signal.SIGKILL, died.stderr
        assert fresh in (previous, "1.1.0"), kill_at
        left = served_files(repository)
        # The next publish after the crash completes and is what clients see.
        finished = run_publisher(state, image, 0)
        assert finished.returncode == 0, finished.stderr
        assert seen_release(repository, again, root) == "1.1.0"
        # Whatever the killed publisher left (and the server may have served, marked
        # immutable) keeps its content under its name; the next publish skips past it.
        assert {path: served_files(repository).get(path) for path in left} == left, kill_at
        kill_at += 1
    assert kill_at == writes + 1
    bins = ReleaseStore(state).reader().bins("model-board-a")
    if scenario == "with a delta":
        # image, delta, pointer, model role, snapshot, record, timestamp
        assert writes == 7 and bins is None
    else:
        # image, pointer, every bin, model role, snapshot, record, timestamp
        assert bins is not None and writes == bins.number_of_bins + 6


def test_two_publishers_at_once_are_serialized(tmp_path: Path) -> None:
    operator = create_repository(tmp_path / "state", models=("board-a", "board-b"))
    before = operator.store.reader().timestamp().version
    scripts = []
    for model in ("board-a", "board-b"):
        images = []
        for n in range(12):
            path = tmp_path / f"{model}-{n}.img"
            path.write_bytes(operator.image(model, f"1.0.{n}", n))
            images.append(str(path))
        scripts.append(_publish_many(tmp_path, model, images))
    processes = [
        subprocess.Popen([sys.executable, str(script)], cwd=REPO, env=ENV, stderr=subprocess.PIPE)
        for script in scripts
    ]
    for process in processes:
        assert process.wait(timeout=120) == 0, process.stderr.read() if process.stderr else ""
    repo = operator.store.reader()
    releases = list_releases(repo)
    assert len(releases) == 24
    # Every publish got its own snapshot and timestamp version: nothing was overwritten.
    assert repo.timestamp().version == before + 24
    root = operator.root_bytes()
    updater = client(operator.store.repository_dir, tmp_path / "device", root)
    updater.refresh()
    for model in ("board-a", "board-b"):
        pointer = updater.get_targetinfo(f"{model}/current.json")
        assert pointer is not None and pointer.custom["version"] == "1.0.11"


def _publish_many(tmp_path: Path, model: str, images: list[str]) -> Path:
    script = tmp_path / f"publish-{model}.py"
    script.write_text(
        "from pathlib import Path\n"
        "from update_service.release_publisher import publish\n"
        "from update_service.release_store import ReleaseStore\n"
        f"store = ReleaseStore(Path({str(tmp_path / 'state')!r}))\n"
        f"for image in {images!r}:\n"
        f"    publish(store, Path(image).read_bytes(), model={model!r})\n"
    )
    return script
