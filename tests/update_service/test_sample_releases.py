"""The sample firmware's releases, built reproducibly, publish in order as an operator would."""

from __future__ import annotations

from pathlib import Path

from firmware_images.build import build
from tests.update_service.release_fixtures import create_repository
from update_service import release_publisher
from update_service.release_publisher import list_releases


def test_the_sample_releases_publish_in_order(tmp_path: Path) -> None:
    operator = create_repository(tmp_path / "state", models=("sensor-app",))
    key = operator.image_keys["sensor-app"]
    (tmp_path / "images").mkdir()
    built = build(key=key, out=tmp_path / "images")
    published = [
        release_publisher.publish(
            operator.store, (tmp_path / "images" / image.file).read_bytes(), model="sensor-app"
        )
        for image in sorted(built, key=lambda image: image.security_counter)
    ]
    assert [p.version for p in published] == ["1.0.0", "1.1.0", "1.2.0", "1.3.0"]
    assert [p.image_digest for p in published] == [
        image.image_hash.hex() for image in sorted(built, key=lambda i: i.security_counter)
    ]
    listed = list_releases(operator.store.reader(), "sensor-app")
    assert [(r["version"], r["current"]) for r in listed][-1] == ("1.3.0", True)
