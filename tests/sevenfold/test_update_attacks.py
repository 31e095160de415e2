"""The attacks of TUF's threat model (spec 1.5.2), each against a real board's update agent.

One fleet for the whole module: a real fleet server with its managed Mosquitto
and the attestation gate on, DICE boards provisioned over their consoles, the
release service's repository (a 2-of-2 offline root whose keys the test
keeps), the sample firmware's 1.0.0 and then 1.1.0 published for the boards'
model, and a second registered model with a release of its own. Each board
runs 1.0.0 and its factory-installed repository URL points at an attacker's
mirror (:mod:`tests.attacker_mirror`: a real loopback HTTP server) that serves
a copy of the real repository, or of one of its earlier states the attacker
kept, with the attack applied; where the attack needs a key, the key is the
server's own (a compromise) or one of the offline root keys.

For every attack the board's update check is refused with the client's or
the agent's specific code, the board stays on its image (same slot and
version, the other slot not pending), its ``failed`` report carries the code
and the reason, and the server turned it into a security event for that
device. Each attack has a board of its own: the server records one event per
device, state and target in ten minutes, and a board's earlier refusals
must not hide the next one's event.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import Metadata, MetaFile, Root, Snapshot, TargetFile, Targets, Timestamp

from device_runtime.core import protocol
from device_runtime.core.slots import PENDING, slot_pair
from device_runtime.ports.cpython.storage import DirectoryStore
from device_runtime.simulated_board import (
    TUF_DIR,
    UPDATES_DIR,
    install_firmware,
    install_update_trust,
    open_flash,
    run_board,
)
from device_runtime.simulator import SimulatedDevice
from firmware_images.build import checked, release_image
from firmware_images.sensor_app.releases import release
from fleet_platform.server_config import ServerConfig
from sevenfold.cli.demo import HWMODEL, provision_over_consoles, publish_release
from sevenfold.cli.release import endorse_release
from sevenfold.server import FleetServer
from tests.attacker_mirror import ANNOUNCED, CHUNKED, AttackerMirror, forge
from tests.attacker_mirror import repository_files as served_files
from tests.attestation_fixtures import gated_fleet, operator_api
from tests.firmware_fixtures import SampleFirmware
from update_service import key_ceremony, release_publisher, root_metadata
from update_service.release_store import ReleaseStore
from update_service.signing_keys import generate_signer
from update_service.tuf_repository import RELEASES

pytestmark = [pytest.mark.timeout(300), pytest.mark.xdist_group("fleet-server")]

OTHER_MODEL = "sim-board-2"
"""A second registered hardware model, whose images the same vendor key signs."""
MODEL_ROLE = f"model-{HWMODEL}"
OTHER_ROLE = f"model-{OTHER_MODEL}"
POINTER = f"{HWMODEL}/current.json"
BOARDS = 19
"""One per attack (see the module docstring): provisioned together, before the first test."""
HUNG_UP_BY = 8 * 1024 * 1024
"""The most an endless body may have been sent before the device hung up: its limit (16 KiB
for a timestamp, the target's length for an image) plus what the sockets buffered on the way,
far below the mirror's cap (a device that read on would reach it)."""
HIGH_COUNTER_VERSION = "1.4.0"
"""A release the factory flashes on one board, with a security counter above any published."""

Files = dict[str, bytes]


@dataclass
class ReleaseLine:
    """The fleet, its release line's keys, the attacker's mirror and what it copied, and the
    boards not attacked yet."""

    server: FleetServer
    config: ServerConfig
    firmware: SampleFirmware
    offline: list[CryptoSigner]
    """The two offline root keys (threshold 2)."""
    mirror: AttackerMirror
    first: Files
    """The repository as the attacker copied it after 1.0.0 was published."""
    second: Files
    """... and after the second model was registered and published for, before 1.1.0."""
    boards: list[Path]
    factory_root: bytes

    @property
    def store(self) -> ReleaseStore:
        return ReleaseStore(self.config.state_dir)

    def live(self) -> Files:
        """The real repository as it is now: what an honest mirror serves."""
        return served_files(self.store.repository_dir)

    def online(self, role: str) -> list[CryptoSigner]:
        """The server's online keys for *role*, as an attacker who broke in would take them."""
        keys = self.store.keys
        return keys.signers(role, sorted(keys.keyids(role)))

    def board(self) -> Path:
        """A board no attack has been tried on yet, running 1.0.0 from slot A."""
        return self.boards.pop()

    def check(self, board: Path) -> SimulatedDevice:
        """Boot *board* once: attest, heartbeat, then its update agent checks the mirror."""
        device = run_board(
            directory=board, kind="dice", hwmodel=HWMODEL, beats=1, prefix=protocol.DEFAULT_PREFIX
        )
        assert device.error is None, device.error
        return device


@pytest.fixture(scope="module")
def line(
    tmp_path_factory: pytest.TempPathFactory, sample_firmware: SampleFirmware
) -> Iterator[ReleaseLine]:
    with gated_fleet(tmp_path_factory.mktemp("attacks")) as (server, config, maker):
        state = config.state_dir
        boards = [d for d, _ in provision_over_consoles(state, server.http_url, ["dice"] * BOARDS,
                                                        None, maker)]  # fmt: skip
        vendor_key = sample_firmware.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        offline = [generate_signer(), generate_signer()]
        publish_release(state, sample_firmware.images["1.0.0"], vendor_key, offline)
        store = ReleaseStore(state)
        first = served_files(store.repository_dir)
        key_pem = release_publisher.image_key_pem(vendor_key)
        release_publisher.add_hardware(store, OTHER_MODEL, [key_pem])
        release_publisher.publish(store, sample_firmware.images["1.3.0"], model=OTHER_MODEL)
        second = served_files(store.repository_dir)
        published = release_publisher.publish(store, sample_firmware.images["1.1.0"], model=HWMODEL)
        assert endorse_release(published.as_json(), state, None)["ok"]
        factory_root = first["/metadata/1.root.json"]
        mirror = AttackerMirror()
        with mirror:
            for board in boards:
                sample_firmware.install(board, "1.0.0")
                install_update_trust(board, root=factory_root, repository_url=mirror.url)
            yield ReleaseLine(server=server, config=config, firmware=sample_firmware,
                              offline=offline, mirror=mirror, first=first, second=second,
                              boards=boards, factory_root=factory_root)  # fmt: skip


# -- reading and changing a repository copy ------------------------------------------------


def _timestamp(files: Files) -> Metadata[Timestamp]:
    return Metadata[Timestamp].from_bytes(files["/metadata/timestamp.json"])


def _snapshot_path(files: Files) -> str:
    return f"/metadata/{_timestamp(files).signed.snapshot_meta.version}.snapshot.json"


def _role_path(files: Files, role: str) -> str:
    """Where *files* serve the version of *role* their snapshot names."""
    snapshot = Metadata[Snapshot].from_bytes(files[_snapshot_path(files)])
    return f"/metadata/{snapshot.signed.meta[f'{role}.json'].version}.{role}.json"


def _target_url(path: str, target: TargetFile) -> str:
    folder, _, name = path.rpartition("/")
    return f"/targets/{folder}/{target.hashes['sha256']}.{name}"


def _release_urls(files: Files, version: str) -> list[str]:
    """The served files of our model's *version*: its image and the deltas to it."""
    role = Metadata[Targets].from_bytes(files[_role_path(files, MODEL_ROLE)]).signed
    return [
        _target_url(path, target)
        for path, target in role.targets.items()
        if target.custom.get("version") == version and path != POINTER
    ]


def _retimestamp(files: Files, signers: list[CryptoSigner], snapshot: str) -> None:
    """The next timestamp version, signed by *signers*, naming the snapshot file at *snapshot*."""
    data = files[snapshot]
    version = Metadata[Snapshot].from_bytes(data).signed.version

    def name(signed: Timestamp) -> None:
        signed.snapshot_meta = MetaFile.from_data(version, data, ["sha256"])

    timestamp = files["/metadata/timestamp.json"]
    next_version = _timestamp(files).signed.version + 1
    files["/metadata/timestamp.json"] = forge(timestamp, signers, name, version=next_version)


def _rewrite_model_role(line: ReleaseLine, files: Files, edit: Callable[[Targets], None]) -> None:
    """Our model's role, edited and signed with the server's release key, at the version the
    snapshot names, and the snapshot that pins it by hash and the timestamp that pins the
    snapshot re-signed with the server's online keys: a break-in on the server, where all
    of them live (the release key alone no longer suffices)."""
    path = _role_path(files, MODEL_ROLE)
    version = Metadata[Targets].from_bytes(files[path]).signed.version
    files[path] = forge(files[path], line.online(RELEASES), edit, version=version)
    role = files[path]

    def pin(signed: Snapshot) -> None:
        signed.meta[f"{MODEL_ROLE}.json"] = MetaFile.from_data(version, role, ["sha256"])

    snapshot = _snapshot_path(files)
    snapshot_version = Metadata[Snapshot].from_bytes(files[snapshot]).signed.version
    files[snapshot] = forge(files[snapshot], line.online("snapshot"), pin,
                            version=snapshot_version)  # fmt: skip
    _retimestamp(files, line.online("timestamp"), snapshot)


# -- what every refused attack must leave --------------------------------------------------


PINNED_ROLE = r"model-sim-board-1\.json (is \d+ bytes, not|does not match)|not the one the snapshot"
"""How a model role other than the one the snapshot pins is refused: by its length or hash."""


def _attacked(line: ReleaseLine, board: Path, files: Files) -> SimulatedDevice:
    line.mirror.serve(files)
    return line.check(board)


def assert_refused(
    line: ReleaseLine, board: Path, device: SimulatedDevice, code: str, reason: str,
    *, version: str = "1.0.0", slot: str = "A",
) -> None:  # fmt: skip
    """The board stays on *version* in *slot*, nothing pending; it reported ``failed`` with
    "<code>: <reason>" (*code* and *reason* are patterns) and the server made it a security
    event."""
    assert (device.firmware, device.slot, device.pending) == (version, slot, None)
    flash = open_flash(board)
    try:
        other = slot_pair(flash)[1 if slot == "A" else 0]
        assert other.trailer().state != PENDING
    finally:
        flash.close()
    with operator_api(line.server, line.config) as api:
        answer = api.get(f"/api/v1/devices/{board.name}/updates", params={"limit": 10})
        assert answer.status_code == 200, answer.text
        entries = answer.json()["entries"]
        events = api.get("/api/v1/events", params={"limit": 1000}).json()
    assert entries, "the board reported nothing"
    newest = entries[0]
    assert newest["state"] == "failed", entries
    assert newest["from_version"] == version
    expected = re.compile(f"(?:{code}): .*(?:{reason})")
    assert expected.match(newest["reason"]), newest["reason"]
    mine = [e for e in events if e["device_id"] == board.name and e["code"] == "update-failed"]
    assert any(expected.search(e["reason"]) for e in mine), mine


def _trusted_version(board: Path, role: str = "timestamp") -> int:
    """The version of *role* the board trusts (what it stored after checking it)."""
    data = DirectoryStore(directory=board / UPDATES_DIR / TUF_DIR).read(f"{role}.json")
    assert data is not None
    return int(Metadata.from_bytes(data).signed.version)


# -- 1. rollback ---------------------------------------------------------------------------


def _replayed_timestamp(line: ReleaseLine) -> Files:
    return dict(line.first)  # the whole older repository, every file validly signed


def _older_snapshot(line: ReleaseLine) -> Files:
    files = dict(line.second)
    _retimestamp(files, line.online("timestamp"), _snapshot_path(line.first))
    return files


def _older_targets(line: ReleaseLine) -> Files:
    files = dict(line.second)
    older = Metadata[Snapshot].from_bytes(line.first[_snapshot_path(line.first)]).signed
    current = Metadata[Snapshot].from_bytes(files[_snapshot_path(files)]).signed

    def list_older(signed: Snapshot) -> None:
        signed.meta["targets.json"] = older.meta["targets.json"]

    path = f"/metadata/{current.version + 1}.snapshot.json"
    files[path] = forge(files[_snapshot_path(files)], line.online("snapshot"), list_older,
                        version=current.version + 1)  # fmt: skip
    _retimestamp(files, line.online("timestamp"), path)
    return files


@pytest.mark.parametrize(
    ("attack", "reason"),
    [
        pytest.param(_replayed_timestamp, "timestamp version", id="replayed-timestamp"),
        pytest.param(_older_snapshot, "names an older snapshot", id="older-snapshot"),
        pytest.param(_older_targets, "older version of targets.json", id="older-targets"),
    ],
)
def test_rollback_to_metadata_older_than_seen_is_refused(
    line: ReleaseLine, attack: Callable[[ReleaseLine], Files], reason: str
) -> None:
    """The board saw the repository's second state; the mirror then serves an older one
    (validly signed), or, with the online timestamp (and snapshot) key, new metadata that
    names older versions: TUF's version rules refuse each (spec 5.4.3, 5.5.5)."""
    board = line.board()
    assert _attacked(line, board, line.second).pending is None  # nothing new for it there
    seen = _trusted_version(board, "snapshot")
    device = _attacked(line, board, attack(line))
    assert_refused(line, board, device, "rollback", reason)
    assert _trusted_version(board, "snapshot") == seen


# -- 2. indefinite freeze ------------------------------------------------------------------


def test_frozen_timestamp_past_its_expiry_is_refused(line: ReleaseLine) -> None:
    """The mirror froze the repository before 1.1.0 and replays its timestamp after the
    timestamp expired: signed with the real online key, its expiry in the past."""
    board = line.board()
    files = dict(line.second)
    past = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0)
    files["/metadata/timestamp.json"] = forge(
        files["/metadata/timestamp.json"], line.online("timestamp"), expires=past
    )
    device = _attacked(line, board, files)
    assert_refused(line, board, device, "expired", "timestamp has expired")


# -- 3. mix-and-match ----------------------------------------------------------------------


def _snapshot_of_another_publish(line: ReleaseLine) -> Files:
    files = line.live()
    files[_snapshot_path(files)] = line.second[_snapshot_path(line.second)]
    return files


def _model_role_of_another_publish(line: ReleaseLine) -> Files:
    files = line.live()
    files[_role_path(files, MODEL_ROLE)] = line.second[_role_path(line.second, MODEL_ROLE)]
    return files


@pytest.mark.parametrize(
    ("attack", "code", "reason"),
    [
        # The timestamp pins the snapshot's length and SHA-256; which check refuses the
        # other publish's depends on its length (its signature's DER length varies): a
        # longer one is cut off at the pinned length, a shorter or equal one fails it.
        pytest.param(_snapshot_of_another_publish, "mismatch|too-large",
                     r"snapshot\.json(: body of| is \d+ bytes, not| does not match)",
                     id="snapshot"),
        # The snapshot pins our model's role by length and SHA-256 too (a role's document
        # does not name its role): another publish's is refused by those first.
        pytest.param(_model_role_of_another_publish, "mismatch", PINNED_ROLE, id="model-role"),
    ],
)  # fmt: skip
def test_metadata_mixed_from_two_publishes_is_refused(
    line: ReleaseLine, attack: Callable[[ReleaseLine], Files], code: str, reason: str
) -> None:
    """Today's timestamp with the snapshot of an earlier publish, or today's snapshot with
    the model role from before 1.1.0 (the snapshot pins its version): each document is
    validly signed, the mix is refused."""
    board = line.board()
    device = _attacked(line, board, attack(line))
    assert_refused(line, board, device, code, reason)


# -- 4. arbitrary software -----------------------------------------------------------------


def test_another_image_in_place_of_the_release_is_refused(line: ReleaseLine) -> None:
    """The mirror serves 1.2.0, a genuine image the vendor key signed and of the same
    length, where 1.1.0 (and any delta to it) is: the device checks the bytes against the
    target's SHA-256, not just the image signature."""
    board = line.board()
    files = line.live()
    ours = line.firmware.images["1.1.0"]
    # Signatures are deterministic and their DER length varies by a byte or two: of the
    # 1.2.0 builds at several security counters, one has 1.1.0's length.
    other = next(
        image
        for counter in range(3, 64)
        for image in [release_image(replace(release("1.2.0"), security_counter=counter),
                                    line.firmware.key)]
        if len(image) == len(ours)
    )  # fmt: skip
    for url in _release_urls(files, "1.1.0"):
        files[url] = other
    device = _attacked(line, board, files)
    assert_refused(line, board, device, "bad-image", "do not hash to the target's SHA-256")


def test_image_signed_by_an_attacker_key_is_refused_even_with_the_release_key(
    line: ReleaseLine,
) -> None:
    """The attacker holds the server's online keys (release, snapshot, timestamp): the model
    role names, with a valid signature, an image the attacker signed with a key of its own.
    TUF accepts it; the image key the boards' first stage trusts (never on the server)
    refuses it."""
    board = line.board()
    files = line.live()
    attacker = ec.generate_private_key(ec.SECP256R1())
    forged = release_image(replace(release("1.1.0"), security_counter=9), attacker)
    digest = checked(forged, attacker).image_hash.hex()
    image_path = release_publisher.image_target(HWMODEL, "1.1.0")

    def list_forged(signed: Targets) -> None:
        target = TargetFile.from_data(image_path, forged)
        target.unrecognized_fields["custom"] = {
            **signed.targets[image_path].custom,
            "image_digest": digest,
            "security_counter": 9,
        }
        signed.targets[image_path] = target
        pointer = signed.targets[POINTER]
        pointer.unrecognized_fields["custom"] = {
            **pointer.custom,
            "image_digest": digest,
            "security_counter": 9,
            "deltas": {},
        }
        files[_target_url(image_path, target)] = forged

    _rewrite_model_role(line, files, list_forged)
    device = _attacked(line, board, files)
    assert_refused(line, board, device, "bad-image", "KEYHASH")


# -- 5. endless data -----------------------------------------------------------------------


@pytest.mark.parametrize("how", [CHUNKED, ANNOUNCED])
def test_endless_timestamp_is_refused_before_it_is_buffered(line: ReleaseLine, how: str) -> None:
    """timestamp.json answered with a body that never ends, announced as a terabyte or sent
    in chunks: refused at the client's limit for it (16 KiB), the connection dropped."""
    board = line.board()
    line.mirror.serve(line.live())
    line.mirror.endless("/metadata/timestamp.json", how)
    device = line.check(board)
    assert line.mirror.endless_done.wait(10)
    assert line.mirror.endless_sent < HUNG_UP_BY, line.mirror.endless_sent
    assert_refused(line, board, device, "too-large", "timestamp.json")


@pytest.mark.parametrize("how", [CHUNKED, ANNOUNCED])
def test_endless_image_is_refused_before_it_is_buffered(line: ReleaseLine, how: str) -> None:
    """The release's image (and any delta to it) answered with bodies that never end."""
    board = line.board()
    files = line.live()
    line.mirror.serve(files)
    for url in _release_urls(files, "1.1.0"):
        line.mirror.endless(url, how)
    device = line.check(board)
    assert line.mirror.endless_done.wait(10)
    assert line.mirror.endless_sent < HUNG_UP_BY, line.mirror.endless_sent
    assert_refused(
        line, board, device, "download", r"1\.1\.0\.img: body of \d+ bytes is over the limit"
    )


# -- 7. a root key compromised, below the threshold ----------------------------------------


def test_new_root_signed_by_one_of_two_root_keys_is_refused(line: ReleaseLine) -> None:
    """One offline root key is stolen: the attacker signs the next root version, naming its
    own keys for every role, with it and with its own root key. The trusted root asks for
    two of its two keys (spec 5.3.4)."""
    board = line.board()
    files = line.live()
    version = line.store.reader().root_version()
    attacker = generate_signer()

    def take_over(signed: Root) -> None:
        for role in signed.roles:
            for keyid in list(signed.roles[role].keyids):
                signed.revoke_key(keyid, role)
            signed.add_key(attacker.public_key, role)
            signed.roles[role].threshold = 1

    files[f"/metadata/{version + 1}.root.json"] = forge(
        files[f"/metadata/{version}.root.json"], [line.offline[0], attacker], take_over,
        version=version + 1,
    )  # fmt: skip
    device = _attacked(line, board, files)
    assert_refused(line, board, device, "threshold", "root has 1 valid signatures of 2")


# -- 8. wrong software for this hardware ---------------------------------------------------


def _other_model_files(line: ReleaseLine) -> tuple[Files, Targets]:
    files = line.live()
    return files, Metadata[Targets].from_bytes(files[_role_path(files, OTHER_ROLE)]).signed


def test_other_models_image_in_place_of_ours_is_refused(line: ReleaseLine) -> None:
    """The mirror serves the second model's current image where our 1.1.0 is: the target's
    length (and SHA-256) in our model's signed role refuse it before it is read."""
    board = line.board()
    files = line.live()
    image = line.firmware.images["1.3.0"]  # the second model's current release
    assert len(image) > len(line.firmware.images["1.1.0"])
    for url in _release_urls(files, "1.1.0"):
        files[url] = image
    device = _attacked(line, board, files)
    assert_refused(line, board, device, "download", f"body of {len(image)} bytes is over the limit")


def test_other_models_role_in_place_of_ours_is_refused(line: ReleaseLine) -> None:
    """Both model roles are signed by the one release key: the mirror serves the second
    model's role where ours is. The snapshot pins our role's length and hash, not that one's."""
    board = line.board()
    files, _ = _other_model_files(line)
    files[_role_path(files, MODEL_ROLE)] = files[_role_path(files, OTHER_ROLE)]
    device = _attacked(line, board, files)
    assert_refused(line, board, device, "mismatch", PINNED_ROLE)


def test_pointer_for_another_model_is_refused(line: ReleaseLine) -> None:
    """With the server's online keys, the attacker makes our model's pointer the second model's:
    the agent's own check, the hardware model the pointer names."""
    board = line.board()
    files, other = _other_model_files(line)

    def point_elsewhere(signed: Targets) -> None:
        theirs = other.targets[f"{OTHER_MODEL}/current.json"]
        signed.targets[POINTER] = TargetFile(
            theirs.length, theirs.hashes, POINTER, theirs.unrecognized_fields
        )

    _rewrite_model_role(line, files, point_elsewhere)
    device = _attacked(line, board, files)
    assert_refused(line, board, device, "wrong-hardware", f"for '{OTHER_MODEL}'")


def test_pointer_to_another_models_image_is_refused(line: ReleaseLine) -> None:
    """With the server's online keys, our model's pointer (its hardware model still ours) names the
    second model's image, which that model's role lists for that model."""
    board = line.board()
    files, other = _other_model_files(line)
    theirs = other.targets[f"{OTHER_MODEL}/current.json"].custom

    def point_at_theirs(signed: Targets) -> None:
        pointer = signed.targets[POINTER]
        pointer.unrecognized_fields["custom"] = {
            **pointer.custom, "image": theirs["image"], "image_digest": theirs["image_digest"],
            "version": theirs["version"], "security_counter": theirs["security_counter"],
            "deltas": {},
        }  # fmt: skip

    _rewrite_model_role(line, files, point_at_theirs)
    device = _attacked(line, board, files)
    assert_refused(line, board, device, "wrong-hardware", OTHER_MODEL)


# -- a release below the device's security counter -----------------------------------------


def test_release_below_the_device_counter_is_refused_without_download(line: ReleaseLine) -> None:
    """The factory flashed this board with 1.4.0 (security counter 5), ahead of the
    repository, whose current release is 1.1.0 (2): the agent refuses the offer as a
    rollback before downloading a byte of it."""
    board = line.board()
    newer = replace(release("1.1.0"), version=HIGH_COUNTER_VERSION, security_counter=5)
    image = release_image(newer, line.firmware.key)
    verified = checked(image, line.firmware.key)
    endorsement = {"model": HWMODEL, "image_digest": verified.image_hash.hex(),
                   "version": newer.version, "security_counter": 5}  # fmt: skip
    assert endorse_release(endorsement, line.config.state_dir, None)["ok"]
    install_firmware(board, image=image, image_key=line.firmware.key.public_key())
    device = _attacked(line, board, line.live())
    assert_refused(line, board, device, "rollback", "security counter 2, below this device's 5",
                   version=HIGH_COUNTER_VERSION)  # fmt: skip
    assert line.mirror.requested("/targets/") == []


# -- 6. fast-forward, then the timestamp key rotated ---------------------------------------


def test_fast_forward_is_recovered_from_by_rotating_the_timestamp_key(line: ReleaseLine) -> None:
    """The online timestamp key is stolen: the board is served a timestamp of a huge
    version, and after it every real timestamp is a rollback. The operators rotate the
    timestamp key with the key ceremony (root v+1 signed by both offline keys); at its
    next check the board follows the new root, drops the fast-forwarded timestamp (its
    key is no longer trusted) and updates as usual. Last in the module: it rotates a key
    of the real repository."""
    board = line.board()
    files = dict(line.second)
    huge = 2**31
    files["/metadata/timestamp.json"] = forge(
        files["/metadata/timestamp.json"], line.online("timestamp"), version=huge
    )
    assert _attacked(line, board, files).pending is None
    assert _trusted_version(board) == huge

    real = line.server.http_url + "/tuf"
    install_update_trust(board, root=line.factory_root, repository_url=real)
    device = line.check(board)
    assert_refused(line, board, device, "rollback", f"< {huge}")

    root = key_ceremony.rotate(line.store, "timestamp")
    assert root is not None
    for signer in line.offline:
        root_metadata.sign_root(root, signer)
    key_ceremony.import_root(line.store, root)

    assert line.check(board).pending == "1.1.0"
    assert _trusted_version(board) < huge
    updated = line.check(board)
    assert (updated.firmware, updated.slot, updated.pending) == ("1.1.0", "B", None)
    with operator_api(line.server, line.config) as api:
        entries = api.get(f"/api/v1/devices/{board.name}/updates").json()["entries"]
    assert [e["state"] for e in entries[:5]] == [
        "confirmed", "booted", "installed", "downloading", "checking"
    ]  # fmt: skip
