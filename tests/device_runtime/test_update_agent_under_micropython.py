"""A full update cycle under the real MicroPython: TUF refresh, pointer, download, install,
pending; then the reboot that tries the image and confirms it.

The repository is the release service's own (``update_service``: a 2-of-3 offline root,
the model's role and pointer, consistent snapshots), its files served by a real HTTP
server on loopback. The board (``slots_on_device.board``: software root of trust,
file-backed flash) runs every stage as a fresh interpreter from ROMFS: the factory
provisions 1.0.0 and the repository's root; the application checks once with the core's
``UpdateAgent`` and installs 1.1.0 into slot B; the next boot's bootloader tries it and its
health check confirms it. At 64 KiB the cycle does not fit (the TUF client, the downloads
and the verifier with its root of trust are more than the heap): the check ends in a
clean refusal, the board stays on 1.0.0 and nothing is pending. :data:`HEAP` is the
smallest heap, in 8 KiB steps, at which the cycle passed every run
(``bench/bench_update_cycle.py`` scans it and times it).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import pytest

from device_runtime.core import signed_image
from device_runtime.ports.cpython.crypto import verify_ecdsa_der
from firmware_images.micropython_bundle import romfs_image
from tests.device_runtime.download_server import DownloadServer
from tests.device_runtime.test_under_micropython import bytecode_tree
from tests.device_runtime.update_agent_on_device import MARK, MODEL
from tests.device_runtime.update_device import KEY, KEY_POINT, payload
from tests.update_service.release_fixtures import Operator, create_repository

__all__ = ["bytecode_tree"]

pytestmark = pytest.mark.timeout(300)

HEAP = "144K"
LAUNCHER = Path(__file__).with_name("flash_launcher.py")
AGENT = "tests.device_runtime.update_agent_on_device"
SLOTS = "tests.device_runtime.slots_on_device"
BODY = payload(120_000, 41)


@pytest.fixture(scope="module")
def flash(bytecode_tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    image = tmp_path_factory.mktemp("flash") / "flash.romfs"
    image.write_bytes(romfs_image(bytecode_tree))
    return image


@pytest.fixture(scope="module")
def operator(tmp_path_factory: pytest.TempPathFactory) -> Operator:
    """The release line: 1.0.0 and 1.1.0 of the board's model, signed with its image key."""
    made = create_repository(tmp_path_factory.mktemp("releases") / "state", models=())
    made.add_model(MODEL, KEY)
    made.publish(MODEL, "1.0.0", 2, BODY)
    made.publish(MODEL, "1.1.0", 3, BODY[:60_000] + b"fixed" + BODY[60_005:])
    return made


@pytest.fixture
def server(operator: Operator) -> Iterator[DownloadServer]:
    root = operator.store.repository_dir
    files = {"/" + path.relative_to(root).as_posix(): path.read_bytes()
             for path in root.rglob("*") if path.is_file()}  # fmt: skip
    with DownloadServer(files) as running:
        yield running


def stage(flash: Path, board: Path, heap: str, module: str, *args: str) -> list[str]:
    """One boot of the board: what it printed after its mark, without the last line."""
    result = subprocess.run(
        [sys.executable, str(LAUNCHER), str(flash), heap, module, args[0], str(board),
         *args[1:]],
        cwd=board, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    mark = MARK if module == AGENT else "SLOTS"
    lines = [line.split(" ", 1)[1] for line in result.stdout.splitlines() if line.startswith(mark)]
    assert lines and lines[-1].startswith("done "), result.stdout + result.stderr
    print(f"{args[0]} at {heap}: {lines}")
    return lines[:-1]


def provisioned(tmp_path: Path, flash: Path, operator: Operator) -> tuple[Path, list[str]]:
    """A board with 1.0.0 confirmed in slot A and the repository's root; the agent stage's
    arguments for it."""
    board = tmp_path / "board"
    (board / "tuf").mkdir(parents=True)
    image = operator.image(MODEL, "1.0.0", 2, BODY)
    (board / "old.img").write_bytes(image)
    (board / "tuf" / "root.json").write_bytes(operator.root_bytes())
    assert stage(flash, board, "64K", SLOTS, "provision", MODEL, KEY_POINT.hex(), "-") == []
    booted = signed_image.verify(BytesIO(image).read, KEY_POINT, verify_ecdsa_der)
    return board, [KEY_POINT.hex(), "0", "1.0.0", booted.image_hash.hex(), str(booted.size)]


def test_a_full_cycle_refresh_download_install_then_confirm(
    tmp_path: Path, flash: Path, operator: Operator, server: DownloadServer
) -> None:
    board, running = provisioned(tmp_path, flash, operator)
    lines = stage(flash, board, HEAP, AGENT, "update", *running, server.url)
    assert lines[0] == "pending 1.1.0", lines
    # The next boot: the bootloader tries 1.1.0 once and its health check confirms it.
    (boot, *_) = stage(flash, board, "64K", SLOTS, "healthy", MODEL, KEY_POINT.hex(), "-")
    assert boot.startswith("boot 1 1.1.0 1 "), boot
    (boot, *_) = stage(flash, board, "64K", SLOTS, "boot", MODEL, KEY_POINT.hex(), "-")
    assert boot == "boot 1 1.1.0 0 3 -", boot  # confirmed; the counter is 1.1.0's


def test_at_64k_the_check_is_refused_cleanly_and_the_board_stays_as_it_was(
    tmp_path: Path, flash: Path, operator: Operator, server: DownloadServer
) -> None:
    board, running = provisioned(tmp_path, flash, operator)
    lines = stage(flash, board, "64K", AGENT, "update", *running, server.url)
    assert lines[0].startswith("failed too-large"), lines
    (boot, *_) = stage(flash, board, "64K", SLOTS, "boot", MODEL, KEY_POINT.hex(), "-")
    assert boot.startswith("boot 0 1.0.0 0 "), boot
