"""A writer killed at any write leaves the repository a client can use; two never interleave.

Each kill is a real SIGKILL of a real writer process (a publish, a root
import that rotates the online keys, a rotation of the release key), before
each of its file writes in turn, so every state a crash can leave on disk is
tried. The judge is python-tuf's own client, both a fresh one and one that
had already seen the state before (which checks rollback too): it must
refresh and find the state before or the state after, never an error; the
same command run again must complete; and no file the killed writer left
(but ``timestamp.json``) may change content, since it may have been served.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tuf.ngclient import Updater

from tests.update_service.file_fetcher import METADATA, TARGETS, DirectoryFetcher
from tests.update_service.release_fixtures import create_repository
from update_service import root_metadata
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


def seen_state(repository: Path, directory: Path, root: bytes) -> str:
    """The root version and current release a client finds, after checking the image's bytes."""
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
    return f"root v{updater._trusted_set.root.version}, {pointer.custom['version']}"


def served_files(repository: Path) -> dict[Path, bytes]:
    """Every file of the repository by name, but ``timestamp.json`` (the one replaced in place)."""
    return {
        path: path.read_bytes()
        for path in repository.rglob("*")
        if path.is_file() and path.name != "timestamp.json"
    }


def run_writer(state: Path, kill_at: int, *operation: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.update_service.write_until_killed", str(state),
         str(kill_at), *operation],
        cwd=REPO, env=ENV, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def killed_at_every_write(
    tmp_path: Path, operation: list[str], before: str, after: str
) -> tuple[Path, int]:
    """Run *operation* on copies of ``tmp_path/pristine``, killed before each write in turn.

    After each kill the clients must see *before* or *after*, and the same
    operation run again must complete, leaving *after* and every file the
    killed one wrote as it was. Returns the state the run that was not killed
    left, and the number of writes it made (one per kill before it).
    """
    root = (tmp_path / "pristine" / "repository" / "metadata" / "1.root.json").read_bytes()
    seen = tmp_path / "seen-before"
    assert seen_state(ReleaseStore(tmp_path / "pristine").repository_dir, seen, root) == before
    kill_at = 1
    while True:
        state = tmp_path / f"killed-{kill_at}"
        shutil.copytree(tmp_path / "pristine", state, symlinks=True)
        died = run_writer(state, kill_at, *operation)
        repository = ReleaseStore(state).repository_dir
        fresh = seen_state(repository, tmp_path / f"fresh-{kill_at}", root)
        again = tmp_path / f"seen-{kill_at}"
        shutil.copytree(seen, again)
        assert seen_state(repository, again, root) == fresh
        if died.returncode == 0:
            assert fresh == after
            assert kill_at == int(died.stdout) + 1
            return state, kill_at - 1
        assert died.returncode == -signal.SIGKILL, died.stderr
        assert fresh in (before, after), kill_at
        left = served_files(repository)
        finished = run_writer(state, 0, *operation)
        assert finished.returncode == 0, finished.stderr
        assert seen_state(repository, again, root) == after
        # Whatever the killed writer left (and the server may have served, marked
        # immutable) keeps its content under its name; the next run skips past it.
        assert {path: served_files(repository).get(path) for path in left} == left, kill_at
        kill_at += 1


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
    image = tmp_path / "next.img"
    image.write_bytes(operator.image("board-a", "1.1.0", 2, body))
    state, writes = killed_at_every_write(
        tmp_path, ["publish", str(image), "board-a"], f"root v1, {previous}", "root v1, 1.1.0"
    )
    bins = ReleaseStore(state).reader().bins("model-board-a")
    if scenario == "with a delta":
        # image, delta, pointer, model role, snapshot, record, timestamp
        assert writes == 7 and bins is None
    else:
        # image, pointer, every bin, model role, snapshot, record, timestamp
        assert bins is not None and writes == bins.number_of_bins + 6


def test_a_root_import_killed_at_any_write_leaves_clients_on_one_root_or_the_other(
    tmp_path: Path,
) -> None:
    operator = create_repository(tmp_path / "pristine")
    operator.publish("board-a", "1.0.0", 1, BODY)
    keys = operator.store.keys
    current = operator.store.reader().root()
    # Root v2 gives every online top-level role a new key (made now, unused until imported).
    new = {role: [keys.generate(role)] for role in ("targets", "snapshot", "timestamp")}
    md = root_metadata.next_root(current, now=datetime.now(UTC), replace=new)
    for signer in operator.root_keys[:2]:
        root_metadata.sign_root(md, signer)
    root_file = tmp_path / "root-v2.json"
    root_metadata.write_root_file(root_file, md)
    state, writes = killed_at_every_write(
        tmp_path, ["import-root", str(root_file)], "root v1, 1.0.0", "root v2, 1.0.0"
    )
    # targets, snapshot, timestamp (each signed with the old key and the new), then the root
    assert writes == 4
    store = ReleaseStore(state)
    for role, (key,) in new.items():
        assert store.keys.keyids(role) == {key.keyid}


def test_a_release_key_rotation_killed_at_any_write_leaves_a_consistent_repository(
    tmp_path: Path,
) -> None:
    operator = create_repository(tmp_path / "pristine")
    for n in range(LEAF_CAPACITY + 1):  # binned: the rotation re-signs every bin
        operator.publish("board-a", f"1.0.{n}", n)
    old = operator.store.keys.keyids("releases")
    current = f"root v1, 1.0.{LEAF_CAPACITY}"
    state, writes = killed_at_every_write(tmp_path, ["rotate-releases"], current, current)
    store = ReleaseStore(state)
    repo = store.reader()
    bins = repo.bins("model-board-a")
    assert bins is not None
    # the new key, targets, every bin, the model role, snapshot, timestamp
    assert writes == bins.number_of_bins + 5
    held = store.keys.keyids("releases")
    assert len(held) == 1 and not held & old and set(bins.keyids) == held
    delegations = repo.targets().delegations
    assert delegations is not None and delegations.roles is not None
    assert set(delegations.roles["model-board-a"].keyids) == held


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
