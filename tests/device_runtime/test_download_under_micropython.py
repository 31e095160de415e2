"""Downloads under the real MicroPython, over real HTTP on loopback: a download cut off resumes
after a reboot (a new interpreter) from the durable record and fetches only the rest; a delta
from the running image is applied and checked; a hostile one falls back to the full image
with the reason.

Not at 64 KiB: beside the software root of trust, the image verifier and the slots (about
52 KiB of a 64 KiB heap once loaded, ``docs/updates.md``), the HTTP client and the download
modules take about 11 KiB and the transfer and the final signature check the rest; the
full and resumed downloads pass at :data:`HEAP_FULL`, the delta path (its 7 KiB heatshrink
window besides) at :data:`HEAP_DELTA`, the smallest heaps, in 4 KiB steps, at which they
passed every run.

Each stage is ``download_on_device.py`` run from the bundle's ROMFS image (bytecode outside
the heap, as a board's flash) by ``flash_launcher.py``; the server is
``download_server.DownloadServer`` in this process, counting what it sends.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import pytest

from device_runtime.core import signed_image
from device_runtime.core.slot_install import FLUSH_EVERY
from device_runtime.image_signer import sign_image
from device_runtime.ports.cpython.crypto import verify_ecdsa_der
from firmware_images.micropython_bundle import romfs_image
from tests.device_runtime.download_on_device import MARK
from tests.device_runtime.download_server import DownloadServer
from tests.device_runtime.test_under_micropython import bytecode_tree
from tests.device_runtime.update_device import KEY, KEY_POINT, MODEL, payload
from update_service.deltas import build_delta

__all__ = ["bytecode_tree"]

pytestmark = pytest.mark.timeout(300)

HEAP_FULL = "80K"
HEAP_DELTA = "96K"
MODULE = "tests.device_runtime.download_on_device"
LAUNCHER = Path(__file__).with_name("flash_launcher.py")
BODY = payload(200_000, 31)
OLD = sign_image(BODY, key=KEY, version="1.0.0", security_counter=2)
NEW = sign_image(BODY[:70_000] + b"fixed" + BODY[70_005:], key=KEY, version="1.1.0",
                 security_counter=3)  # fmt: skip
DELTA = build_delta(OLD, NEW)


@pytest.fixture(scope="module")
def flash(bytecode_tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    image = tmp_path_factory.mktemp("flash") / "flash.romfs"
    image.write_bytes(romfs_image(bytecode_tree))
    return image


@pytest.fixture
def server() -> Iterator[DownloadServer]:
    with DownloadServer({"/new.img": NEW, "/old-to-new.delta": DELTA}) as running:
        yield running


def stage(flash: Path, board: Path, heap: str, *args: str, module: str = MODULE) -> list[str]:
    """One boot of the board: what it printed after its mark, its last line the heap left."""
    result = subprocess.run(
        [sys.executable, str(LAUNCHER), str(flash), heap, module, args[0], str(board),
         *args[1:]],
        cwd=board, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    mark = MARK if module == MODULE else "SLOTS"
    lines = [line.split(" ", 1)[1] for line in result.stdout.splitlines() if line.startswith(mark)]
    assert lines and lines[-1].startswith("done "), result.stdout + result.stderr
    print(f"{args[0]}: {lines}")
    return lines[:-1]


def provisioned(tmp_path: Path, flash: Path) -> Path:
    board = tmp_path / "board"
    board.mkdir()
    (board / "old.img").write_bytes(OLD)
    factory = ("provision", MODEL, KEY_POINT.hex(), "-")
    assert stage(flash, board, "64K", *factory, module="tests.device_runtime.slots_on_device") == []
    return board


def image_args(server: DownloadServer) -> list[str]:
    return [server.url + "/new.img", str(len(NEW)), hashlib.sha256(NEW).hexdigest()]


def test_a_cut_download_resumes_after_a_reboot_and_fetches_only_the_rest(
    tmp_path: Path, flash: Path, server: DownloadServer
) -> None:
    board = provisioned(tmp_path, flash)
    server.faults = ["drop:150000"]
    (line,) = stage(flash, board, HEAP_FULL, "full", KEY_POINT.hex(), "0", "1", *image_args(server))
    assert line.startswith(f"failed download {2 * FLUSH_EVERY} new.img: gave up after 1 attempts")
    before = server.served
    (line, _) = stage(
        flash, board, HEAP_FULL, "full", KEY_POINT.hex(), "0", "3", *image_args(server)
    )
    assert line == f"installed 1.1.0 full {len(NEW) - 2 * FLUSH_EVERY} -"
    assert server.served - before == len(NEW) - 2 * FLUSH_EVERY
    assert server.requests[-1] == ("/new.img", 2 * FLUSH_EVERY, "")


@pytest.mark.parametrize("hostile", [False, True], ids=["delta", "hostile-delta"])
def test_a_delta_is_applied_on_the_device_or_falls_back_to_the_full_image(
    hostile: bool, tmp_path: Path, flash: Path, server: DownloadServer
) -> None:
    board = provisioned(tmp_path, flash)
    sent = DELTA
    if hostile:  # what a network in the middle could send: same length, broken inside
        sent = DELTA[:1] + bytes([DELTA[1] ^ 0x01]) + DELTA[2:]
        server.files["/old-to-new.delta"] = sent
    old = signed_image.verify(BytesIO(OLD).read, KEY_POINT, verify_ecdsa_der)
    delta = [server.url + "/old-to-new.delta", str(len(DELTA)), hashlib.sha256(DELTA).hexdigest(),
             old.image_hash.hex(), str(old.size)]  # fmt: skip
    (line, _) = stage(
        flash, board, HEAP_DELTA, "update", KEY_POINT.hex(), "0", *image_args(server), *delta
    )
    if hostile:  # refused at its header, before a byte was written: then the full image
        words = line.split(" ", 4)
        assert words[:3] == ["installed", "1.1.0", "full"], line
        assert len(NEW) < int(words[3]) < len(NEW) + len(DELTA)
        refusal = (
            f"bad-delta: the patch makes {len(NEW) + 1} bytes, more than the {len(NEW)} allowed"
        )
        assert words[4] == refusal, line
    else:
        assert line == f"installed 1.1.0 delta {len(DELTA)} -"
        assert server.served == len(DELTA)
