"""The repository over real HTTP: Range requests, ETags, cache headers, versioned names."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fleet_platform.server_config import ServerConfig
from sevenfold.server import FleetServer
from tests.update_service.release_fixtures import Operator, create_repository

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Operator, str]]:
    state = tmp_path_factory.mktemp("serving") / "state"
    operator = create_repository(state)
    operator.publish("board-a", "1.0.0", 1)
    config = ServerConfig(state_dir=state, http_port=0, services=("updates",))
    with FleetServer(config=config) as server:
        yield operator, server.http_url


def _image_url(operator: Operator, url: str) -> tuple[str, bytes]:
    target = operator.store.reader().targets("model-board-a").targets["board-a/board-a-1.0.0.img"]
    name = f"{target.hashes['sha256']}.board-a-1.0.0.img"
    data = (operator.store.repository_dir / "targets" / "board-a" / name).read_bytes()
    return f"{url}/tuf/targets/board-a/{name}", data


def test_a_target_is_served_by_its_hash_in_ranges(served: tuple[Operator, str]) -> None:
    operator, url = served
    image_url, data = _image_url(operator, url)
    whole = httpx.get(image_url)
    assert whole.status_code == 200 and whole.content == data
    assert whole.headers["accept-ranges"] == "bytes"
    assert "immutable" in whole.headers["cache-control"]
    part = httpx.get(image_url, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == data[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(data)}"
    tail = httpx.get(image_url, headers={"Range": "bytes=-16"})
    assert tail.status_code == 206 and tail.content == data[-16:]
    beyond = httpx.get(image_url, headers={"Range": f"bytes={len(data)}-"})
    assert beyond.status_code == 416
    # A resumed download with If-Range and a stale ETag gets the whole file again.
    stale = httpx.get(image_url, headers={"Range": "bytes=0-9", "If-Range": '"stale"'})
    assert stale.status_code == 200 and stale.content == data


def test_etags_let_a_device_skip_an_unchanged_timestamp(served: tuple[Operator, str]) -> None:
    operator, url = served
    first = httpx.get(f"{url}/tuf/metadata/timestamp.json")
    assert first.status_code == 200 and first.headers["cache-control"] == "no-cache"
    etag = first.headers["etag"]
    again = httpx.get(f"{url}/tuf/metadata/timestamp.json", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    weak = httpx.get(f"{url}/tuf/metadata/timestamp.json", headers={"If-None-Match": f"W/{etag}"})
    assert weak.status_code == 304
    operator.publish("board-a", "1.0.1", 1)
    changed = httpx.get(f"{url}/tuf/metadata/timestamp.json", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag


def test_versioned_metadata_names_are_served_and_bad_names_refused(
    served: tuple[Operator, str],
) -> None:
    operator, url = served
    version = operator.store.reader().snapshot().version
    snapshot = httpx.get(f"{url}/tuf/metadata/{version}.snapshot.json")
    assert snapshot.status_code == 200 and "immutable" in snapshot.headers["cache-control"]
    assert httpx.get(f"{url}/tuf/metadata/1.root.json").status_code == 200
    assert httpx.get(f"{url}/tuf/metadata/1.model-board-a.json").status_code == 200
    assert httpx.get(f"{url}/tuf/metadata/999.snapshot.json").status_code == 404
    assert httpx.get(f"{url}/tuf/metadata/..%2Fserver.json").status_code in (400, 404)
    assert httpx.get(f"{url}/tuf/targets/board-a/..%2F..%2Fupdate-service").status_code in (
        400,
        404,
    )
    # The private half of the state directory is not reachable.
    assert not Path(operator.store.private_dir).is_relative_to(operator.store.repository_dir)
