"""What a publish accepts and refuses, what it writes, and how a model's targets are laid out."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from tuf.api.metadata import SuccinctRoles
from tuf.ngclient import Updater

from device_runtime.core.errors import ConfigError, CryptoError, InvalidField, Replayed
from device_runtime.core.signed_image import ImageError
from device_runtime.image_signer import sign_image
from tests.device_runtime.images.cases import malleated
from tests.update_service.file_fetcher import METADATA, TARGETS, DirectoryFetcher
from tests.update_service.release_fixtures import (
    EMPTY_RUN_KEY,
    EMPTY_RUN_PAYLOADS,
    Operator,
    create_repository,
)
from update_service import key_ceremony, metadata_keeper, release_publisher
from update_service.hardware_models import HardwareModel, HardwareModels, UnknownHardware
from update_service.hashed_bins import LEAF_CAPACITY, bit_length_for
from update_service.release_publisher import AlreadyPublished, list_releases, show_release

BODY = bytes(range(256)) * 64


@pytest.fixture
def operator(tmp_path: Path) -> Operator:
    return create_repository(tmp_path / "state", models=("board-a", "board-b"))


def test_a_release_is_a_target_with_its_fields_and_the_model_points_at_it(
    operator: Operator,
) -> None:
    published = operator.publish("board-a", "1.2.3+4", 7)
    assert not published.already_published
    assert published.target == "board-a/board-a-1.2.3_4.img"
    assert set(published.roles) == {"model-board-a", "snapshot", "timestamp"}
    repo = operator.store.reader()
    model = repo.targets("model-board-a")
    target = model.targets[published.target]
    assert target.custom == {
        "hwmodel": "board-a",
        "kind": "image",
        "version": "1.2.3+4",
        "security_counter": 7,
        "image_digest": published.image_digest,
    }
    pointer = model.targets["board-a/current.json"]
    assert pointer.custom["image"] == published.target
    stored = repo.targets_dir / "board-a" / f"{pointer.hashes['sha256']}.current.json"
    assert json.loads(stored.read_bytes()) == pointer.custom
    (listed,) = list_releases(repo, "board-a")
    assert listed["current"] and listed["security_counter"] == 7
    # The timestamp pins the snapshot file by length and hash, not only by version.
    meta = repo.timestamp().snapshot_meta
    assert meta.length is not None and meta.hashes is not None
    meta.verify_length_and_hashes(
        (repo.metadata_dir / f"{meta.version}.snapshot.json").read_bytes()
    )


def test_publishing_the_same_image_again_changes_nothing(operator: Operator) -> None:
    operator.publish("board-a", "1.0.0", 1)
    timestamp = operator.store.reader().timestamp().version
    again = operator.publish("board-a", "1.0.0", 1)
    assert again.already_published and again.roles == []
    assert operator.store.reader().timestamp().version == timestamp


def test_refusals_name_their_reason(operator: Operator) -> None:
    operator.publish("board-a", "1.1.0", 5)
    with pytest.raises(Replayed, match=r"security counter 4 is below the current release's 5"):
        operator.publish("board-a", "1.2.0", 4)
    with pytest.raises(UnknownHardware, match="board-z"):
        release_publisher.publish(operator.store, operator.image("board-a", "2.0.0", 9),
                                  model="board-z")  # fmt: skip
    # An image for board-b is not signed by board-a's key.
    with pytest.raises(ImageError, match="signed by another key"):
        release_publisher.publish(operator.store, operator.image("board-b", "2.0.0", 9),
                                  model="board-a")  # fmt: skip
    good = bytearray(operator.image("board-a", "2.0.0", 9))
    good[-10] ^= 1  # inside the signature
    with pytest.raises(ImageError, match="ECDSA_SIG"):
        release_publisher.publish(operator.store, bytes(good), model="board-a")
    with pytest.raises(ImageError):
        release_publisher.publish(operator.store, bytes(good[:100]), model="board-a")
    with pytest.raises(AlreadyPublished, match="another image"):
        operator.publish("board-a", "1.1.0", 5, b"other bytes" * 10)
    # The same release, its signature malleated: one measurement, but a file TUF would name
    # apart, so it is not published beside the first.
    published = operator.image("board-a", "1.1.0", 5)
    with pytest.raises(AlreadyPublished, match="another image"):
        release_publisher.publish(operator.store, malleated(published), model="board-a")
    with pytest.raises(InvalidField, match="not a hardware model name"):
        release_publisher.publish(operator.store, bytes(good), model="../x")
    with pytest.raises(ConfigError, match="registered already"):
        operator.add_model("board-a")
    # Nothing of the refused images reached the repository.
    assert [r["version"] for r in list_releases(operator.store.reader())] == ["1.1.0"]


def test_an_equal_counter_is_accepted_and_deltas_come_from_the_latest_releases(
    operator: Operator,
) -> None:
    operator.publish("board-a", "1.0.0", 1, BODY + b"1.0.0")
    operator.publish("board-a", "1.0.1", 1, BODY + b"1.0.1")
    newest = operator.publish("board-a", "1.1.0", 2, BODY + b"1.1.0")
    assert {d["base_version"] for d in newest.deltas} == {"1.0.0", "1.0.1"}
    assert all(d["length"] < newest.length / 2 for d in newest.deltas)
    shown = show_release(operator.store.reader(), "board-a", "1.1.0")
    assert shown["current"] and len(shown["deltas"]) == 2
    pointer = operator.store.reader().targets("model-board-a").targets["board-a/current.json"]
    assert set(pointer.custom["deltas"]) == {
        r["image_digest"] for r in list_releases(operator.store.reader()) if not r["current"]
    }
    small = operator.publish("board-b", "1.0.0", 1)
    assert small.deltas == []


def test_an_older_version_at_the_same_counter_is_a_downgrade_only_when_asked_for(
    operator: Operator,
) -> None:
    operator.publish("board-a", "1.1.0", 2)
    with pytest.raises(Replayed, match=r"board-a 1.0.5 is older than the current release 1.1.0"
                       " at the same security counter 2"):  # fmt: skip
        operator.publish("board-a", "1.0.5", 2)
    newer = operator.publish("board-a", "1.1.0+1", 2)  # a build later: not older
    assert not newer.already_published
    reverted = release_publisher.publish(
        operator.store, operator.image("board-a", "1.0.5", 2), model="board-a", allow_downgrade=True
    )
    assert not reverted.already_published
    current = [r["version"] for r in list_releases(operator.store.reader()) if r["current"]]
    assert current == ["1.0.5"]


def test_the_counter_floor_is_the_signed_repositorys_whatever_the_private_record_says(
    operator: Operator,
) -> None:
    operator.publish("board-a", "1.0.0", 3, BODY + b"1.0.0")
    operator.publish("board-a", "1.1.0", 5, BODY + b"1.1.0")
    models = HardwareModels(operator.store.hardware_dir)
    old_key = operator.image_keys["board-a"]
    # A record restored from a backup older than the releases: it knows none of them.
    models.put(HardwareModel(name="board-a", image_keys=models.get("board-a").image_keys))
    with pytest.raises(Replayed, match=r"counter 4 is below the current release's 5 \(board-a 1.1"):
        operator.publish("board-a", "1.0.1", 4)
    # The record lost: the model cannot be registered again, not even with another image key...
    (operator.store.hardware_dir / "board-a.json").unlink()
    with pytest.raises(ConfigError, match=r"its private record \(hardware/board-a.json\) is miss"):
        operator.add_model("board-a")
    with pytest.raises(UnknownHardware):
        operator.publish("board-a", "1.2.0", 6)
    # ... its image keys are given again explicitly, and its record is rebuilt from the repository.
    new_key = ec.generate_private_key(ec.SECP256R1())
    public = release_publisher.image_key_pem(new_key.public_key().public_bytes(*_pem_public()))
    rebuilt = release_publisher.set_image_keys(operator.store, "board-a", [public])
    assert [r.version for r in rebuilt.releases] == ["1.0.0", "1.1.0"]
    operator.image_keys["board-a"] = new_key
    with pytest.raises(Replayed, match="below the current release's 5"):
        operator.publish("board-a", "1.0.2", 4)
    after = operator.publish("board-a", "1.2.0", 5, BODY + b"1.2.0")
    assert {d["base_version"] for d in after.deltas} == {"1.0.0", "1.1.0"}
    # The replaced key no longer signs for the model; an unknown model has no keys to set.
    operator.image_keys["board-a"] = old_key
    with pytest.raises(ImageError, match="signed by another key"):
        operator.publish("board-a", "1.3.0", 6)
    with pytest.raises(UnknownHardware, match="no role in the repository"):
        release_publisher.set_image_keys(operator.store, "board-z", [public])


def test_a_delta_that_cannot_be_made_is_left_out_with_a_warning(operator: Operator) -> None:
    operator.publish("board-a", "1.0.0", 1, BODY + b"1.0.0")
    first = operator.store.reader().targets("model-board-a").targets["board-a/board-a-1.0.0.img"]
    missing = operator.store.repository_dir / "targets" / "board-a"
    missing /= f"{first.hashes['sha256']}.board-a-1.0.0.img"
    missing.unlink()
    published = operator.publish("board-a", "1.1.0", 2, BODY + b"1.1.0")
    assert published.deltas == [] and published.warnings == [
        f"no delta from 1.0.0: its image {missing} cannot be read (No such file or directory)"
    ]
    second = operator.store.reader().targets("model-board-a").targets["board-a/board-a-1.1.0.img"]
    damaged = missing.with_name(f"{second.hashes['sha256']}.board-a-1.1.0.img")
    damaged.write_bytes(bytes(damaged.stat().st_size))
    published = operator.publish("board-a", "1.2.0", 3, BODY + b"1.2.0")
    assert published.deltas == [] and len(published.warnings) == 2
    assert f"no delta from 1.1.0: its image {damaged} is damaged" in published.warnings[1]
    assert published.as_json()["warnings"] == published.warnings
    # A genuine patch with empty entries in a row, which the applier once refused, is published.
    operator.add_model("board-k", EMPTY_RUN_KEY)
    old, new = EMPTY_RUN_PAYLOADS
    operator.publish("board-k", "1.0.0", 1, old)
    published = operator.publish("board-k", "1.1.0", 1, new)
    assert published.warnings == [] and not published.already_published
    assert [d["base_version"] for d in published.deltas] == ["1.0.0"]
    current = [
        r["version"] for r in list_releases(operator.store.reader(), "board-k") if r["current"]
    ]
    assert current == ["1.1.0"]


def test_a_model_is_rebinned_when_a_leaf_overflows_and_a_publish_then_signs_one_bin(
    operator: Operator,
) -> None:
    # The pointer counts: LEAF_CAPACITY - 1 images and it fill the model role.
    for n in range(LEAF_CAPACITY - 1):
        operator.publish("board-a", f"1.0.{n}", n)
    repo = operator.store.reader()
    assert repo.bins("model-board-a") is None
    split = operator.publish("board-a", "1.1.0", 100)
    repo = operator.store.reader()
    bins = repo.bins("model-board-a")
    assert bins is not None and bins.bit_length == bit_length_for(LEAF_CAPACITY, at_least=1)
    assert len(split.roles) == 2**bins.bit_length + 3
    assert set(repo.targets("model-board-a").targets) == {"board-a/current.json"}
    after = operator.publish("board-a", "1.1.1", 100)
    assert len(after.roles) == 4 and after.roles[1].startswith("model-board-a_bin-")
    assert len(list_releases(repo, "board-a")) == LEAF_CAPACITY
    assert len(list_releases(operator.store.reader(), "board-a")) == LEAF_CAPACITY + 1


def test_a_model_named_like_another_models_bin_keeps_its_releases_through_a_rebin(
    tmp_path: Path,
) -> None:
    operator = create_repository(tmp_path / "state", models=("x", "x-bin-0"))
    operator.publish("x-bin-0", "9.9.9", 1)
    for n in range(LEAF_CAPACITY + 1):  # x overflows its role and is spread over bins
        operator.publish("x", f"1.0.{n}", n)
    repo = operator.store.reader()
    bins = repo.bins("model-x")
    assert bins is not None and all(name.startswith("model-x_bin-") for name in bins.get_roles())
    assert [r["version"] for r in list_releases(repo, "x-bin-0")] == ["9.9.9"]
    device = tmp_path / "device"
    device.mkdir()
    updater = Updater(
        metadata_dir=str(device), metadata_base_url=METADATA, target_dir=str(device),
        target_base_url=TARGETS, fetcher=DirectoryFetcher(operator.store.repository_dir),
        bootstrap=operator.root_bytes(),
    )  # fmt: skip
    updater.refresh()
    pointer = updater.get_targetinfo("x-bin-0/current.json")
    assert pointer is not None and pointer.custom["version"] == "9.9.9"
    assert updater.get_targetinfo("x-bin-0/x-bin-0-9.9.9.img") is not None


def test_a_model_whose_role_name_is_taken_is_refused(operator: Operator) -> None:
    # Bins as an older release of the service named them, ``model-<name>-bin-<hex>``:
    # a model named after one of them must not get a second delegation of that name.
    keys = release_publisher.release_keys(operator.store)
    legacy = SuccinctRoles([k.keyid for k in keys], 1, 1, "model-board-a-bin")
    with operator.store.writer() as repo:
        repo.delegate_bins("model-board-a", legacy, {k.keyid: k for k in keys})
        for name in (*legacy.get_roles(), "model-board-a"):
            with repo.edit_targets(name):
                pass
        repo.do_snapshot()
        repo.do_timestamp()
    with pytest.raises(ConfigError, match="model-board-a-bin-0 is a role of this repository"):
        operator.add_model("board-a-bin-0")
    assert "model-board-a-bin-0" not in operator.store.reader().model_roles()


def test_the_keeper_re_signs_what_is_half_expired(operator: Operator) -> None:
    now = datetime.now(UTC)
    assert metadata_keeper.refresh(operator.store, now) == []
    later = now + timedelta(hours=13)
    assert metadata_keeper.refresh(operator.store, later) == ["timestamp"]
    assert metadata_keeper.refresh(operator.store, later) == []
    much_later = now + timedelta(days=200)
    resigned = metadata_keeper.refresh(operator.store, much_later)
    assert set(resigned) == {"targets", "model-board-a", "model-board-b", "snapshot", "timestamp"}
    keeper = metadata_keeper.MetadataKeeper(
        operator.store, now=lambda: much_later + timedelta(days=150)
    )
    assert not keeper.health().ok and "renew" in keeper.health().detail
    assert metadata_keeper.MetadataKeeper(operator.store).health().ok


@pytest.mark.parametrize("edited", ["model-board-a", "targets", "snapshot"])
def test_metadata_edited_on_disk_is_refused_never_re_signed(
    operator: Operator, edited: str
) -> None:
    operator.publish("board-a", "1.0.0", 1)
    repo = operator.store.reader()
    version = repo.snapshot().version if edited == "snapshot" else repo.open(edited).signed.version
    path = repo.metadata_dir / f"{version}.{edited}.json"
    doc = json.loads(path.read_bytes())
    if edited == "model-board-a":  # point the model at an image of the attacker's
        evil = {"length": 4, "hashes": {"sha256": "00" * 32}, "custom": {"kind": "image",
                "hwmodel": "board-a", "version": "6.6.6", "security_counter": 99,
                "image_digest": "00" * 32}}  # fmt: skip
        doc["signed"]["targets"]["board-a/evil.img"] = evil
        doc["signed"]["targets"]["board-a/current.json"]["custom"]["image"] = "board-a/evil.img"
    elif edited == "targets":  # give board-a's role to a key of the attacker's
        doc["signed"]["delegations"]["roles"][0]["threshold"] = 2
    else:
        doc["signed"]["meta"]["model-board-a.json"]["version"] += 1
    path.write_text(json.dumps(doc))
    before = path.read_bytes()
    timestamp = (repo.metadata_dir / "timestamp.json").read_bytes()
    # The snapshot pins the top-level and model roles by hash, the timestamp the snapshot.
    refusal = "is not the file the live metadata"
    later = datetime.now(UTC) + timedelta(days=200)  # every role due: the keeper would re-sign
    with pytest.raises(CryptoError, match=refusal):
        metadata_keeper.refresh(operator.store, later)
    keeper = metadata_keeper.MetadataKeeper(operator.store, now=lambda: later)
    assert keeper.refresh() == []
    health = keeper.health()
    assert not health.ok and refusal in health.detail and edited in health.detail
    with pytest.raises(CryptoError, match=refusal):
        operator.publish("board-a", "1.0.1", 1)
    # Nothing was signed over the edit.
    assert path.read_bytes() == before
    assert (repo.metadata_dir / "timestamp.json").read_bytes() == timestamp


def test_rotating_the_release_key_re_signs_every_model_role_and_bin(operator: Operator) -> None:
    for n in range(LEAF_CAPACITY + 1):
        operator.publish("board-a", f"1.0.{n}", n)
    old = operator.store.keys.keyids("releases")
    assert key_ceremony.rotate(operator.store, "releases") is None
    new = operator.store.keys.keyids("releases")
    assert len(new) == 1 and not new & old
    repo = operator.store.reader()
    bins = repo.bins("model-board-a")
    assert bins is not None and bins.keyids == sorted(new)
    for role in repo.leaves("model-board-a"):
        assert set(repo.open(role).signatures) == new
    operator.publish("board-a", "2.0.0", 200)


def test_an_image_key_must_be_p256(operator: Operator, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="P-256"):
        release_publisher.image_key_pem(
            ec.generate_private_key(ec.SECP384R1()).public_key().public_bytes(*_pem_public())
        )
    with pytest.raises(ConfigError, match="PEM"):
        release_publisher.image_key_pem(b"-----BEGIN PUBLIC KEY-----\nAAAA\n")
    private = operator.image_keys["board-a"].private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )  # fmt: skip
    with pytest.raises(ConfigError, match="holds a private key: an image signing key must never"):
        release_publisher.image_key_pem(private)
    assert sign_image  # the fixture signs with device_runtime.image_signer


def _pem_public() -> tuple[object, object]:
    return serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
