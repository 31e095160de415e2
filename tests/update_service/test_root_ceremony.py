"""Root metadata is installed only as TUF allows; every other root is refused with why."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from securesystemslib.signer import CryptoSigner, Signature, SSlibKey
from tuf.api.exceptions import UnsignedMetadataError
from tuf.ngclient import Updater

from device_runtime.core.errors import ConfigError, CryptoError, InvalidField, SevenfoldError
from tests.components import binary
from tests.update_service.file_fetcher import METADATA, TARGETS, DirectoryFetcher
from tests.update_service.release_fixtures import Operator, create_repository
from update_service import key_ceremony, metadata_keeper, root_metadata
from update_service.release_store import ReleaseStore
from update_service.signing_keys import (
    generate_signer,
    read_public_key,
    read_signer,
    write_private_key,
)


@pytest.fixture
def operator(tmp_path: Path) -> Operator:
    return create_repository(tmp_path / "state")


def test_a_first_root_needs_its_threshold(tmp_path: Path) -> None:
    operator = create_repository(tmp_path / "fresh", models=())
    assert operator.store.reader().root().roles["root"].threshold == 2
    store = ReleaseStore(tmp_path / "other")
    keys = [generate_signer() for _ in range(3)]
    public = [k.public_key for k in keys]
    md = key_ceremony.init_repository(store, root_keys=public, threshold=2)
    root_metadata.sign_root(md, keys[0])
    with pytest.raises(CryptoError, match=r"under-signed: 1 of the 2 signatures root v1"):
        key_ceremony.import_root(store, md)
    assert not store.reader().exists()
    with pytest.raises(ConfigError, match="cannot be met by 3 root keys"):
        key_ceremony.init_repository(store, root_keys=public, threshold=4)
    with pytest.raises(ConfigError, match="has a repository already"):
        key_ceremony.init_repository(operator.store, root_keys=public, threshold=1)


def test_a_rotation_needs_the_old_threshold_and_the_new(operator: Operator) -> None:
    new_keys = [generate_signer(), generate_signer()]
    md = key_ceremony.rotate(
        operator.store, "root", root_keys=[k.public_key for k in new_keys], threshold=2
    )
    assert md is not None and md.signed.version == 2
    for signer in new_keys:
        root_metadata.sign_root(md, signer)
    with pytest.raises(CryptoError, match=r"0 of the 2 signatures the previous root v1 requires"):
        key_ceremony.import_root(operator.store, md)
    root_metadata.sign_root(md, operator.root_keys[0])
    with pytest.raises(CryptoError, match=r"1 of the 2 signatures the previous root v1"):
        key_ceremony.import_root(operator.store, md)
    md.signatures.pop(new_keys[1].public_key.keyid)
    root_metadata.sign_root(md, operator.root_keys[1])
    with pytest.raises(CryptoError, match=r"1 of the 2 signatures root v2 itself"):
        key_ceremony.import_root(operator.store, md)
    root_metadata.sign_root(md, new_keys[1])
    imported = key_ceremony.import_root(operator.store, md)
    assert imported.version == 2 and not imported.created and not imported.already_installed
    # The same root again finds nothing left to do; another root v2 is not a next version.
    timestamp = operator.store.reader().timestamp().version
    again = key_ceremony.import_root(operator.store, md)
    assert again.already_installed and again.resigned == [] and again.retired_keys == []
    assert operator.store.reader().timestamp().version == timestamp
    md.signed.expires += timedelta(days=1)
    with pytest.raises(InvalidField, match="root v2 cannot follow root v2: expected v3"):
        key_ceremony.import_root(operator.store, md)


def test_an_expired_root_is_refused(operator: Operator) -> None:
    past = datetime.now(UTC) - timedelta(days=400)
    md = key_ceremony.rotate(operator.store, "root", now=past)
    assert md is not None
    for signer in operator.root_keys:
        root_metadata.sign_root(md, signer)
    with pytest.raises(CryptoError, match="root v2 expired at"):
        key_ceremony.import_root(operator.store, md)


def test_rotating_the_timestamp_key_goes_through_a_signed_root(operator: Operator) -> None:
    operator.publish("board-a", "1.0.0", 1)
    old = operator.store.keys.keyids("timestamp")
    md = key_ceremony.rotate(operator.store, "timestamp")
    assert md is not None
    pending = operator.store.keys.keyids("timestamp") - old
    assert len(pending) == 1 and md.signed.roles["timestamp"].keyids == sorted(pending)
    # Until the new root is in, the old key signs.
    assert set(operator.store.reader().open("timestamp").signatures) == old
    for signer in operator.root_keys[:2]:
        root_metadata.sign_root(md, signer)
    imported = key_ceremony.import_root(operator.store, md)
    assert imported.retired_keys == sorted(old)
    # Signed by both keys (written before the new root, for clients on either root) ...
    assert set(operator.store.reader().open("timestamp").signatures) == pending | old
    operator.publish("board-a", "1.0.1", 1)
    # ... and by the new key alone from the next timestamp on.
    assert set(operator.store.reader().open("timestamp").signatures) == pending


def test_a_root_naming_online_keys_the_server_lacks_is_refused(operator: Operator) -> None:
    stranger = generate_signer()
    current = operator.store.reader().root()
    md = root_metadata.next_root(
        current, now=datetime.now(UTC), replace={"snapshot": [stranger.public_key]}
    )
    for signer in operator.root_keys[:2]:
        root_metadata.sign_root(md, signer)
    with pytest.raises(CryptoError, match="gives snapshot to keys this server does not hold"):
        key_ceremony.import_root(operator.store, md)


@pytest.mark.parametrize("kind", ["ed25519 root key", "p-384 online key", "p-384 as p-256"])
def test_a_root_with_a_key_that_is_not_p256_is_refused(operator: Operator, kind: str) -> None:
    current = operator.store.reader().root()
    if kind == "ed25519 root key":
        stranger = CryptoSigner(ed25519.Ed25519PrivateKey.generate())
        md = root_metadata.next_root(
            current, now=datetime.now(UTC), replace={"root": [stranger.public_key]},
            root_threshold=1,
        )  # fmt: skip
        root_metadata.sign_root(md, stranger)
        refusal = "is ed25519/ed25519: every key of the repository must be ecdsa/ecdsa-sha2"
    else:
        p384 = SSlibKey.from_crypto(ec.generate_private_key(ec.SECP384R1()).public_key())
        if kind == "p-384 as p-256":  # the declared scheme is the fleet's, the key is not
            p384 = SSlibKey(p384.keyid, "ecdsa", "ecdsa-sha2-nistp256", p384.keyval)
            refusal = "is not an ECDSA P-256 key"
        else:
            refusal = "is ecdsa/ecdsa-sha2-nistp384"
        md = root_metadata.next_root(current, now=datetime.now(UTC), replace={"targets": [p384]})
    for signer in operator.root_keys[:2]:
        root_metadata.sign_root(md, signer)
    with pytest.raises(CryptoError, match=refusal):
        key_ceremony.import_root(operator.store, md)
    assert operator.store.reader().root_version() == 1


def test_a_root_listing_one_key_under_two_keyids_is_refused(operator: Operator) -> None:
    # Root key A listed again under a made-up keyid, threshold 2: A alone would meet it.
    a, b, _ = operator.root_keys
    md = key_ceremony.rotate(operator.store, "root", root_keys=[a.public_key], threshold=1)
    assert md is not None
    fake = "f" * 64
    md.signed.keys[fake] = SSlibKey.from_dict(fake, a.public_key.to_dict())
    md.signed.roles["root"].keyids.append(fake)
    md.signed.roles["root"].threshold = 2
    for signer in (a, b):
        root_metadata.sign_root(md, signer)
    md.signatures[fake] = Signature(fake, md.signatures[a.public_key.keyid].signature)
    with pytest.raises(InvalidField, match=r"key ffffffffffffffff is listed under a keyid that"
                       r" is not its own \(" + a.public_key.keyid[:16]):  # fmt: skip
        key_ceremony.import_root(operator.store, md)
    # Another key's keyid is not its own either.
    md.signed.keys.pop(fake)
    md.signed.roles["root"].keyids.remove(fake)
    md.signed.roles["root"].threshold = 1
    md.signed.keys[b.public_key.keyid] = SSlibKey.from_dict(
        b.public_key.keyid, a.public_key.to_dict()
    )
    md.signed.roles["root"].keyids.append(b.public_key.keyid)
    with pytest.raises(InvalidField, match="is not its own"):
        key_ceremony.import_root(operator.store, md)
    assert operator.store.reader().root_version() == 1


def test_root_files_and_key_files_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "root.json"
    path.write_bytes(b"{" * 10)
    with pytest.raises(InvalidField, match="not TUF metadata"):
        root_metadata.read_root_file(path)
    path.write_bytes(b" " * (root_metadata.MAX_ROOT_FILE + 1))
    with pytest.raises(SevenfoldError, match="over"):
        root_metadata.read_root_file(path)
    with pytest.raises(ConfigError, match="there is no root metadata file"):
        root_metadata.read_root_file(tmp_path / "missing.json")
    key = tmp_path / "k.pem"
    write_private_key(key, generate_signer())
    assert key.stat().st_mode & 0o777 == 0o600
    # The server takes root keys' public halves only: a private key file is refused.
    with pytest.raises(CryptoError, match="holds a private key: a root key's private half never"):
        read_public_key(key)
    key.write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    with pytest.raises(CryptoError, match="not a PEM private key"):
        read_signer(key)


@pytest.fixture(scope="module")
def signed_root(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    operator = create_repository(tmp_path_factory.mktemp("hypothesis") / "state", models=())
    return operator.root_bytes()


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_a_mangled_root_file_is_refused_never_crashes(
    signed_root: bytes, tmp_path: Path, data: st.DataObject
) -> None:
    raw = json.loads(signed_root)
    mutation = data.draw(st.sampled_from(["bytes", "field", "truncate"]))
    if mutation == "bytes":
        blob = data.draw(st.binary(max_size=2048))
    elif mutation == "truncate":
        blob = signed_root[: data.draw(st.integers(0, len(signed_root) - 1))]
    else:
        key = data.draw(st.sampled_from(sorted(raw["signed"])))
        raw["signed"][key] = data.draw(
            st.one_of(st.none(), st.integers(), st.text(max_size=8), st.lists(st.integers()))
        )
        blob = json.dumps(raw).encode()
    path = tmp_path / "mangled.json"
    path.write_bytes(blob)
    try:
        md = root_metadata.read_root_file(path)
    except InvalidField:
        return
    # Whatever parsed must still fail the checks (it is not the next root of anything here).
    with pytest.raises(SevenfoldError):
        root_metadata.check_new_root(md, previous=md.signed, now=datetime.now(UTC))


def test_a_first_import_that_died_is_finished_by_importing_the_same_root(tmp_path: Path) -> None:
    store = ReleaseStore(tmp_path / "state")
    keys = [generate_signer() for _ in range(2)]
    md = key_ceremony.init_repository(store, root_keys=[k.public_key for k in keys], threshold=1)
    root_metadata.sign_root(md, keys[0])
    with store.writer() as repo:
        repo.install_root(md)  # where a publisher killed right after the root write stops
    assert not store.reader().exists()
    imported = key_ceremony.import_root(store, md)
    assert imported.created and imported.already_installed and store.reader().exists()
    again = key_ceremony.import_root(store, md)
    assert not again.created and again.resigned == []


@pytest.mark.parametrize("role", ["timestamp", "targets"])
def test_an_import_that_died_after_its_root_is_finished_by_importing_the_same_root(
    operator: Operator, tmp_path: Path, role: str
) -> None:
    operator.publish("board-a", "1.0.0", 1)
    old = operator.store.keys.keyids(role)
    md = key_ceremony.rotate(operator.store, role)
    assert md is not None
    for signer in operator.root_keys[:2]:
        root_metadata.sign_root(md, signer)
    with operator.store.writer() as repo:
        repo.install_root(md)  # where an import that wrote the root first was killed
    client = Updater(
        metadata_dir=str(tmp_path), metadata_base_url=METADATA, target_dir=str(tmp_path),
        target_base_url=TARGETS, fetcher=DirectoryFetcher(operator.store.repository_dir),
        bootstrap=operator.root_bytes(1),
    )  # fmt: skip
    with pytest.raises(UnsignedMetadataError, match=f"{role} was signed by 0/1 keys"):
        client.refresh()
    imported = key_ceremony.import_root(operator.store, md)
    assert imported.already_installed and imported.retired_keys == sorted(old)
    assert imported.resigned == (["targets", "snapshot", "timestamp"] if role == "targets"
                                 else ["timestamp"])  # fmt: skip
    assert key_ceremony.import_root(operator.store, md).resigned == []
    seen = tmp_path / "after"
    seen.mkdir()
    client = Updater(
        metadata_dir=str(seen), metadata_base_url=METADATA, target_dir=str(seen),
        target_base_url=TARGETS, fetcher=DirectoryFetcher(operator.store.repository_dir),
        bootstrap=operator.root_bytes(1),
    )  # fmt: skip
    client.refresh()
    pointer = client.get_targetinfo("board-a/current.json")
    assert pointer is not None and pointer.custom["version"] == "1.0.0"


def test_the_keeper_finishes_a_targets_rotation_that_died_before_re_signing(
    operator: Operator,
) -> None:
    md = key_ceremony.rotate(operator.store, "targets")
    assert md is not None
    for signer in operator.root_keys[:2]:
        root_metadata.sign_root(md, signer)
    with operator.store.writer() as repo:
        repo.install_root(md)  # killed before targets, snapshot and timestamp were re-signed
    resigned = metadata_keeper.refresh(operator.store, datetime.now(UTC))
    assert resigned[0] == "targets" and "timestamp" in resigned
    repo = operator.store.reader()
    targets = repo.open("targets")
    repo.root().verify_delegate("targets", targets.signed_bytes, targets.signatures)
    operator.publish("board-a", "1.0.0", 1)


def test_a_root_key_made_with_openssl_signs_a_root(tmp_path: Path) -> None:
    key = tmp_path / "openssl-root.pem"
    command = ["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(key)]
    subprocess.run([binary("openssl"), *command], check=True, capture_output=True)
    public = tmp_path / "openssl-root.pub.pem"
    command = ["ec", "-in", str(key), "-pubout", "-out", str(public)]
    subprocess.run([binary("openssl"), *command], check=True, capture_output=True)
    signer = read_signer(key)
    assert read_public_key(public).keyid == signer.public_key.keyid
    store = ReleaseStore(tmp_path / "state")
    md = key_ceremony.init_repository(store, root_keys=[read_public_key(public)], threshold=1)
    root_metadata.sign_root(md, signer)
    assert key_ceremony.import_root(store, md).created
