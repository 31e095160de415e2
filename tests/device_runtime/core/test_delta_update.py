"""An update by delta, over real HTTP: taken when it applies to the running image, checked
as a full image is, and any failure of it falls back to the full image with the reason.

The last test takes both from the project's own update service: a release published with
its delta, the routes serving ``/tuf/targets``, the device reading what the signed
targets metadata says of each.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import pytest

from device_runtime.core import download_record, signed_image
from device_runtime.core.delta_update import DELTA, FULL, Update, install_update
from device_runtime.core.download import Downloader, Target
from device_runtime.core.download_record import DownloadRecord
from device_runtime.core.slot_install import FLUSH_EVERY, mark_pending
from device_runtime.image_signer import sign_image
from device_runtime.ports.cpython.crypto import verify_ecdsa_der
from fleet_platform.server_config import ServerConfig
from sevenfold.server import FleetServer
from tests.device_runtime.download_board import Board, target
from tests.device_runtime.download_server import DownloadServer
from tests.device_runtime.stepped_clock import SteppedClock
from tests.device_runtime.update_device import KEY, KEY_POINT, MODEL, payload
from tests.update_service.release_fixtures import create_repository
from update_service.deltas import build_delta
from update_service.release_publisher import delta_target, image_target

pytestmark = pytest.mark.timeout(120)

BODY = payload(150_000, 21)
STEPPED = BODY[:40_000] + b"a bug fixed here" + BODY[40_000:90_000] + b"and here" + BODY[90_100:]
OLD = sign_image(BODY, key=KEY, version="1.0.0", security_counter=2)
NEW = sign_image(STEPPED, key=KEY, version="1.1.0", security_counter=3)
OTHER = next(
    other
    for fix in (b"and HERE", b"and Here", b"and hERE", b"AND here", b"And here")
    for other in [
        sign_image(STEPPED.replace(b"and here", fix), key=KEY, version="1.1.0", security_counter=3)
    ]
    if len(other) == len(NEW)
)
"""Another 1.1.0 of NEW's length (its signature's DER length varies), so that a delta to it
is refused by the hash, not by the length the metadata promises."""
DELTA_BYTES = build_delta(OLD, NEW)
IMAGE_PATH = "/tuf/targets/board/new.img"
DELTA_PATH = "/tuf/targets/board/old-to-new.delta"


def measured(image: bytes) -> bytes:
    """The image's digest, as boot selection measures it and the publisher names a base."""
    return signed_image.verify(BytesIO(image).read, KEY_POINT, verify_ecdsa_der).image_hash


@pytest.fixture
def server() -> Iterator[DownloadServer]:
    with DownloadServer({IMAGE_PATH: NEW, DELTA_PATH: DELTA_BYTES}) as running:
        yield running


@pytest.fixture
def board(tmp_path: Path) -> Iterator[Board]:
    made = Board(tmp_path, OLD)
    yield made
    made.close()


def delta_of(server: DownloadServer, data: bytes = DELTA_BYTES, base: bytes = b"") -> Target:
    return target(server.url, data, DELTA_PATH, base or measured(OLD))


def update(board: Board, server: DownloadServer, delta: Target | None) -> tuple[Update, Downloader]:
    """Install NEW (by *delta* if it is taken), mark it pending and boot its trial."""
    boot = board.device.boot()
    downloader = board.downloader(SteppedClock(), attempts=2)
    done = install_update(downloader, board.device.slots, boot.slot, boot.image,
                          board.device.trust, target(server.url, NEW, IMAGE_PATH), delta,
                          MODEL)  # fmt: skip
    assert done.image.version == "1.1.0"
    assert board.device.slots[1].area.read_at(0, len(NEW)) == NEW
    mark_pending(board.device.slots, 0)
    trial = board.device.boot()
    assert trial.trial and trial.slot == 1
    return done, downloader


def test_a_delta_from_the_running_image_is_applied_and_checked_like_the_full_image(
    board: Board, server: DownloadServer
) -> None:
    assert len(DELTA_BYTES) < len(NEW) // 20
    done, downloader = update(board, server, delta_of(server))
    assert done.via == DELTA and done.delta_failure is None
    assert server.served == downloader.received == len(DELTA_BYTES)
    assert [path for path, _, _ in server.requests] == [DELTA_PATH]


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        ("missing", "download: old-to-new.delta: the server answered 404"),
        ("hostile", "bad-delta: patch type 15 is not sequential (0)"),
        ("cut-off", "download: old-to-new.delta: gave up after 2 attempts"),
        ("wrong-result", "bad-image: the 150"),
        ("wrong-delta-hash", "bad-delta: the delta does not hash to its target's SHA-256"),
        ("longer", f"download: old-to-new.delta: body of {len(DELTA_BYTES) + 1} bytes is over"),
    ],
)
def test_any_delta_failure_falls_back_to_the_full_image_with_the_reason(
    damage: str, reason: str, board: Board, server: DownloadServer
) -> None:
    delta = delta_of(server)
    if damage == "missing":
        server.faults = ["status:404"]
    elif damage == "hostile":  # what a network in the middle could send: the hash comes last
        server.files[DELTA_PATH] = b"\xf4" + DELTA_BYTES[1:]
    elif damage == "cut-off":
        server.faults = ["drop:100", "drop:0"]
    elif damage == "wrong-result":  # a genuine patch, to an image the metadata does not name
        server.files[DELTA_PATH] = build_delta(OLD, OTHER)
        delta = delta_of(server, server.files[DELTA_PATH])
    elif damage == "longer":  # another file than the target: refused before its body is read
        server.files[DELTA_PATH] = DELTA_BYTES + b"\0"
    else:
        delta = Target(delta.name, delta.url, delta.length, bytes(32), delta.hardware, delta.base)
    done, _ = update(board, server, delta)
    assert done.via == FULL
    assert done.delta_failure is not None and done.delta_failure.startswith(reason), (
        done.delta_failure
    )
    if damage == "wrong-result":
        assert "do not hash to the target's SHA-256" in done.delta_failure
    assert server.requests[-1] == (IMAGE_PATH, None, "")


def test_a_delta_from_another_image_or_no_smaller_is_not_taken(
    board: Board, server: DownloadServer
) -> None:
    done, _ = update(board, server, delta_of(server, base=measured(NEW)))
    assert done.via == FULL and done.delta_failure is None
    assert [path for path, _, _ in server.requests] == [IMAGE_PATH]


def test_a_full_download_under_way_goes_on_instead_of_the_delta(
    board: Board, server: DownloadServer
) -> None:
    """After a delta failed and the full download began, a reboot must not try the delta
    again (it would throw the full download's progress away every time)."""
    image = target(server.url, NEW, IMAGE_PATH)
    slot = board.device.slots[1]
    slot.erase()
    slot.area.write_at(0, NEW[:FLUSH_EVERY])
    slot.area.flush()
    record = DownloadRecord(image.name, image.length, image.sha256, FLUSH_EVERY)
    download_record.save(board.store, record)
    done, downloader = update(board, server, delta_of(server))
    assert done.via == FULL and done.delta_failure is None
    assert server.requests == [(IMAGE_PATH, FLUSH_EVERY, "")]
    assert downloader.received == len(NEW) - FLUSH_EVERY


def test_the_update_service_serves_the_delta_and_the_image_the_device_installs(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    operator = create_repository(state, models=())
    operator.add_model(MODEL, KEY)
    for version, body in (("1.0.0", BODY), ("1.1.0", STEPPED)):
        published = operator.publish(MODEL, version, 2 if version == "1.0.0" else 3, body)
    assert [d["base_version"] for d in published.deltas] == ["1.0.0"]
    targets = operator.store.reader().targets(f"model-{MODEL}").targets
    bins = operator.store.reader().bins(f"model-{MODEL}")
    assert bins is None, "a model of two releases fits its role"

    def described(path: str, base: bytes = b"") -> Target:
        info = targets[path]
        sha256 = info.hashes["sha256"]
        directory, _, name = path.rpartition("/")
        url = f"{service.http_url}/tuf/targets/{directory}/{sha256}.{name}"
        return Target(name, url, info.length, bytes.fromhex(sha256), [info.custom["hwmodel"]],
                      base)  # fmt: skip

    (tmp_path / "board").mkdir()
    board = Board(tmp_path / "board", OLD)
    config = ServerConfig(state_dir=state, http_port=0, services=("updates",))
    with FleetServer(config=config) as service:
        image = described(image_target(MODEL, "1.1.0"))
        delta_info = targets[delta_target(MODEL, "1.0.0", "1.1.0")]
        delta = described(delta_target(MODEL, "1.0.0", "1.1.0"),
                          bytes.fromhex(delta_info.custom["base_digest"]))  # fmt: skip
        assert image.sha256 == hashlib.sha256(NEW).digest()
        boot = board.device.boot()
        downloader = board.downloader(SteppedClock())
        done = install_update(downloader, board.device.slots, boot.slot, boot.image,
                              board.device.trust, image, delta, MODEL)  # fmt: skip
    assert done.via == DELTA and done.delta_failure is None
    assert downloader.received == delta.length < len(NEW) // 20
    mark_pending(board.device.slots, 0)
    assert board.device.boot().image.version == "1.1.0"
    board.close()
