"""python-tuf's own client agrees: it refreshes from our repository over HTTP and downloads.

The repository is served by the fleet server's own routes (updates only), so
this is the path a device takes: root chain, timestamp, snapshot, targets, the
model's role, the one hashed bin its target is in, and the target by hash.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from tuf.ngclient import Updater

from fleet_platform.server_config import ServerConfig
from sevenfold.server import FleetServer
from tests.update_service.release_fixtures import Operator, create_repository
from update_service import key_ceremony, root_metadata
from update_service.hashed_bins import LEAF_CAPACITY
from update_service.signing_keys import generate_signer

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Operator, str]]:
    operator = create_repository(tmp_path / "state", models=("board-a", "board-b"))
    config = ServerConfig(state_dir=tmp_path / "state", http_port=0, services=("updates",))
    with FleetServer(config=config) as server:
        yield operator, server.http_url


def updater(url: str, directory: Path, root: bytes) -> Updater:
    (directory / "metadata").mkdir(parents=True, exist_ok=True)
    (directory / "downloads").mkdir(exist_ok=True)
    return Updater(
        metadata_dir=str(directory / "metadata"),
        metadata_base_url=f"{url}/tuf/metadata/",
        target_dir=str(directory / "downloads"),
        target_base_url=f"{url}/tuf/targets/",
        bootstrap=root,
    )


def test_the_reference_client_follows_a_root_rotation_and_downloads_through_the_bins(
    served: tuple[Operator, str], tmp_path: Path
) -> None:
    operator, url = served
    first_root = operator.root_bytes(1)
    # Enough releases that board-a's targets are spread over hashed bins.
    for n in range(LEAF_CAPACITY + 2):
        operator.publish("board-a", f"1.0.{n}", n)
    operator.publish("board-b", "2.0.0", 1)
    model = operator.store.reader().targets("model-board-a")
    assert model.delegations is not None and model.delegations.succinct_roles is not None

    # Root rotation: new root keys (2 of 2), signed by the old threshold and the new.
    new_keys = [operator.root_keys[2], generate_signer()]
    md = key_ceremony.rotate(
        operator.store, "root", root_keys=[k.public_key for k in new_keys], threshold=2
    )
    assert md is not None
    for signer in [*operator.root_keys[:2], *new_keys]:
        root_metadata.sign_root(md, signer)
    key_ceremony.import_root(operator.store, md)
    final = operator.publish("board-a", "1.1.0", 99)

    client = updater(url, tmp_path / "device", first_root)
    client.refresh()
    assert client._trusted_set.root.version == 2
    pointer = client.get_targetinfo("board-a/current.json")
    assert pointer is not None and pointer.custom["version"] == "1.1.0"
    assert pointer.custom["security_counter"] == 99
    image_info = client.get_targetinfo(pointer.custom["image"])
    assert image_info is not None and image_info.custom["image_digest"] == final.image_digest
    downloaded = Path(client.download_target(image_info))
    expected = operator.image("board-a", "1.1.0", 99)
    assert hashlib.sha256(downloaded.read_bytes()).digest() == hashlib.sha256(expected).digest()
    old = client.get_targetinfo("board-a/board-a-1.0.3.img")
    assert old is not None and old.custom["security_counter"] == 3
    # A board-b target is not reachable through board-a's role, and vice versa.
    assert client.get_targetinfo("board-a/board-b-2.0.0.img") is None
    assert client.get_targetinfo("board-b/board-b-2.0.0.img") is not None
