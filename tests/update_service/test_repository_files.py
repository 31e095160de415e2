"""Names from the network must never reach outside the repository directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device_runtime.core.errors import InvalidField
from update_service.repository_files import RepositoryFiles


@pytest.fixture
def files(tmp_path: Path) -> RepositoryFiles:
    (tmp_path / "repo" / "metadata").mkdir(parents=True)
    (tmp_path / "repo" / "targets" / "fw").mkdir(parents=True)
    (tmp_path / "repo" / "metadata" / "root.json").write_text("{}")
    (tmp_path / "repo" / "metadata" / "2.root.json").write_text("{}")
    (tmp_path / "repo" / "targets" / "fw" / "app-1.0.bin").write_bytes(b"image")
    (tmp_path / "secret.txt").write_text("outside")
    os.symlink(tmp_path / "secret.txt", tmp_path / "repo" / "targets" / "link.bin")
    return RepositoryFiles(root=tmp_path / "repo")


def test_finds_published_files(files: RepositoryFiles) -> None:
    assert files.metadata("root.json") is not None
    assert files.metadata("2.root.json") is not None
    assert files.metadata("timestamp.json") is None
    found = files.target("fw/app-1.0.bin")
    assert found is not None and found.read_bytes() == b"image"
    assert files.target("fw/missing.bin") is None
    assert files.target("fw") is None


@pytest.mark.parametrize(
    "name", ["../secret.txt", "..", "/etc/passwd", ".hidden.json", "root.json/..", "ROOT.JSON", ""]
)
def test_bad_metadata_names(files: RepositoryFiles, name: str) -> None:
    with pytest.raises(InvalidField):
        files.metadata(name)


@pytest.mark.parametrize(
    "path", ["../secret.txt", "fw/../../secret.txt", "/etc/passwd", "fw//x", ".git/config", ""]
)
def test_bad_target_paths(files: RepositoryFiles, path: str) -> None:
    with pytest.raises(InvalidField):
        files.target(path)


def test_symlink_out_of_the_repository_is_not_served(files: RepositoryFiles) -> None:
    assert files.target("link.bin") is None


@settings(max_examples=300)
@given(st.text(max_size=80))
def test_any_name_resolves_inside_or_not_at_all(
    tmp_path_factory: pytest.TempPathFactory, name: str
) -> None:
    root = tmp_path_factory.getbasetemp() / "hyp-repo"
    (root / "metadata").mkdir(parents=True, exist_ok=True)
    files = RepositoryFiles(root=root)
    for lookup in (files.metadata, files.target):
        try:
            found = lookup(name)
        except InvalidField:
            continue
        assert found is None or found.is_relative_to(root.resolve())
