"""The server's state directory is private to its user, or the server refuses to start."""

from __future__ import annotations

import logging
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from device_runtime.simulator import BrokerAddress, SimulatedFleet
from fleet_platform.pki import fleet_authority
from fleet_platform.server_config import ServerConfig
from fleet_platform.state_directory import UnsafeStateDirectory, secure_state_directory
from sevenfold.server import FleetServer
from tests.components import binary

NOBODY = 65534
"""A user id other than ours; chown to it needs root."""


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def as_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("giving a directory to another user (chown) needs root")


@pytest.fixture
def parent(tmp_path: Path) -> Iterator[Path]:
    """A directory of our own to hold the state directory, restored so pytest can clean up."""
    folder = tmp_path / "srv"
    folder.mkdir(mode=0o755)
    yield folder
    os.chown(folder, os.geteuid(), os.getegid())
    folder.chmod(0o755)


def test_a_missing_directory_is_created_private(parent: Path) -> None:
    state = parent / "a" / "state"
    assert secure_state_directory(state) == state
    assert mode(state) == 0o700


def test_an_open_directory_is_tightened_with_a_warning(
    parent: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = parent / "state"
    state.mkdir()
    state.chmod(0o755)
    (state / "sevenfold.db").write_text("")
    with caplog.at_level(logging.WARNING, logger="fleet_platform.state_directory"):
        secure_state_directory(state)
    assert mode(state) == 0o700
    assert "mode 0755" in caplog.text and str(state) in caplog.text


def test_a_private_directory_is_left_alone_quietly(
    parent: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = parent / "state"
    state.mkdir(mode=0o700)
    with caplog.at_level(logging.WARNING):
        secure_state_directory(state)
    assert mode(state) == 0o700 and caplog.records == []


def test_a_relative_path_comes_back_absolute(parent: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(parent)
    assert secure_state_directory(Path("state")) == parent / "state"


@pytest.mark.usefixtures("as_root")
def test_another_users_directory_is_refused(parent: Path) -> None:
    state = parent / "state"
    state.mkdir(mode=0o700)
    os.chown(state, NOBODY, NOBODY)
    with pytest.raises(UnsafeStateDirectory, match=f"belongs to user {NOBODY}") as refused:
        secure_state_directory(state)
    assert refused.value.code == "config"
    assert mode(state) == 0o700


def test_a_symlink_is_refused_even_to_a_good_directory(parent: Path) -> None:
    real = parent / "real"
    real.mkdir(mode=0o700)
    link = parent / "state"
    link.symlink_to(real)
    with pytest.raises(UnsafeStateDirectory, match="symbolic link") as refused:
        secure_state_directory(link)
    assert str(real) in refused.value.reason


def test_a_dangling_symlink_is_refused_and_not_followed(parent: Path) -> None:
    link = parent / "state"
    link.symlink_to(parent / "elsewhere")
    with pytest.raises(UnsafeStateDirectory, match="symbolic link"):
        secure_state_directory(link)
    assert not (parent / "elsewhere").exists()


def test_a_file_in_its_place_is_refused(parent: Path) -> None:
    (parent / "state").write_text("")
    with pytest.raises(UnsafeStateDirectory, match="not a directory"):
        secure_state_directory(parent / "state")


@pytest.mark.parametrize("open_mode", [0o777, 0o775, 0o757])
def test_a_parent_others_can_write_to_is_refused(parent: Path, open_mode: int) -> None:
    """They could rename the state directory away and put their own in its place."""
    parent.chmod(open_mode)
    with pytest.raises(UnsafeStateDirectory, match="other users could replace it") as refused:
        secure_state_directory(parent / "state")
    assert "chmod go-w" in refused.value.reason
    assert not (parent / "state").exists()


def test_a_writable_directory_further_up_is_refused(parent: Path) -> None:
    (parent / "a").mkdir(mode=0o755)
    parent.chmod(0o777)
    with pytest.raises(UnsafeStateDirectory, match=re.escape(f"inside {parent} (mode 0777)")):
        secure_state_directory(parent / "a" / "state")


def test_a_sticky_shared_parent_is_accepted(parent: Path) -> None:
    """As in /tmp: only an entry's owner may rename or remove it."""
    parent.chmod(0o1777)
    state = secure_state_directory(parent / "state")
    assert mode(state) == 0o700


@pytest.mark.usefixtures("as_root")
def test_a_parent_owned_by_another_user_is_refused(parent: Path) -> None:
    """Its owner can grant themselves write access whenever they like."""
    os.chown(parent, NOBODY, NOBODY)
    with pytest.raises(UnsafeStateDirectory, match=f"belongs to user {NOBODY}"):
        secure_state_directory(parent / "state")


@pytest.mark.usefixtures("as_root")
def test_a_link_on_the_path_is_judged_by_where_it_leads(parent: Path) -> None:
    theirs = parent / "theirs"
    theirs.mkdir(mode=0o755)
    os.chown(theirs, NOBODY, NOBODY)
    (parent / "mine").symlink_to(theirs)
    with pytest.raises(UnsafeStateDirectory, match=re.escape(f"inside {theirs}, which belongs")):
        secure_state_directory(parent / "mine" / "state")


def test_nothing_a_running_server_keeps_is_open_to_other_users(tmp_path: Path) -> None:
    """Start on a 0755 directory, serve enrollments and heartbeats, then look at every entry."""
    binary("mosquitto")
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(0o755)
    config = ServerConfig(
        state_dir=state,
        http_port=0,
        broker_port=0,
        recovery_port=0,
        attestation_gate=False,
        heartbeat_interval=1,
    )
    with FleetServer(config=config) as server:
        assert server.broker is not None
        authority = fleet_authority(state)
        devices = SimulatedFleet(
            directory=tmp_path / "devices",  # the devices' own files are not the server's
            broker=BrokerAddress(
                host=server.broker.host,
                port=server.broker.port,
                ca_path=server.broker.ca_path,
                prefix=config.prefix,
            ),
            certify=lambda csr, device_id: authority.sign_csr(csr, required_common_name=device_id),
            count=2,
        )
        devices.provision()
        devices.start(beats=3)
        devices.wait(timeout=60)
        assert [device.error for device in devices.devices] == [None, None]
        assert [device.beats for device in devices.devices] == [3, 3]
        entries = [state, *state.rglob("*")]
        assert {"sevenfold.db", "sevenfold.db-wal", "server.json"} <= {p.name for p in entries}
        shared = {
            str(path.relative_to(tmp_path)): f"{mode(path):04o}"
            for path in entries
            if mode(path) & 0o077
        }
        assert shared == {}
