"""The device's image verifier under the real MicroPython at 64 KiB, on images it cannot hold.

Every bad image of ``cases.py`` and a valid one are written to files; a
MicroPython process with a 64 KiB heap, its bytecode in a ROMFS image outside
the heap as on a board (``flash_launcher.py``), verifies each one streamed
from its file (``on_device.py``) and must give the verdict CPython gives, word
for word. Two images of 400 KiB, one signed by us and one by ``imgtool``, are
six times the heap: they verify only because the verifier never holds them.
Figures (MB/s, against ``hashlib.sha256`` over the same file) are printed for
``docs/benchmarks.md``; ``bench/bench_image_verify.py`` gives the medians.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from firmware_images.micropython_bundle import romfs_image
from tests.device_runtime.images.cases import KEY, POINT, bad_images, image, outcome
from tests.device_runtime.images.on_device import MARK
from tests.device_runtime.images.test_imgtool_interop import imgtool
from tests.device_runtime.test_under_micropython import bytecode_tree

__all__ = ["bytecode_tree"]

HEAP = "64K"
MODULE = "tests.device_runtime.images.on_device"
LAUNCHER = Path(__file__).parents[1] / "flash_launcher.py"
LARGE = bytes((i * 31 + i // 997) & 0xFF for i in range(400 * 1024))
REPEATS = 3


def on_device(flash: Path, directory: Path) -> dict[str, list[str]]:
    """The IMAGE lines of a MicroPython run over *directory*, by file name."""
    result = subprocess.run(
        [sys.executable, str(LAUNCHER), str(flash), HEAP, MODULE, POINT.hex(), str(directory),
         str(REPEATS)],
        cwd=flash.parent, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    lines: dict[str, list[str]] = {}
    for line in result.stdout.splitlines():
        if line.startswith(MARK + " "):
            _, name, rest = line.split(" ", 2)
            lines.setdefault(name, []).append(rest)
    return lines


def _imgtool_signed(directory: Path, payload: bytes) -> bytes:
    key_file = directory / "key.pem"
    key_file.write_bytes(
        KEY.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (directory / "payload.bin").write_bytes(payload)
    signed = imgtool("sign", "-k", str(key_file), "--pad-header", "-H", "0x200", "-v", "1.2.3",
                     "-s", "7", "-S", "0x100000", str(directory / "payload.bin"),
                     str(directory / "signed.bin"))  # fmt: skip
    assert signed.returncode == 0, signed.stderr
    return (directory / "signed.bin").read_bytes()


def test_the_device_gives_cpythons_verdict_on_every_image(
    bytecode_tree: Path, tmp_path: Path
) -> None:
    flash = tmp_path / "flash.romfs"
    flash.write_bytes(romfs_image(bytecode_tree))
    images = tmp_path / "images"
    images.mkdir()
    cases = {name: data for name, (data, _) in bad_images().items()}
    cases["good"] = image()
    cases["large-ours"] = image(payload=LARGE)
    cases["large-imgtool"] = _imgtool_signed(tmp_path, LARGE)
    for name, data in cases.items():
        (images / (name + ".bin")).write_bytes(data)
    verdicts = on_device(flash, images)
    assert set(verdicts) == {name + ".bin" for name in cases}
    for name, data in cases.items():
        expected = outcome(data)
        device = verdicts[name + ".bin"][0]
        if expected == "ok":
            assert device.startswith("ok 1.2.3 7 "), (name, device)
        else:
            assert device == "refused " + expected, (name, device)
    for name in ("large-ours", "large-imgtool"):
        runs = [line.split()[1:] for line in verdicts[name + ".bin"][1:]]
        assert len(runs) == REPEATS
        size, free = int(runs[0][0]), int(runs[0][3])
        assert size > 6 * 64 * 1024 and free < 64 * 1024
        ours = statistics.median(int(run[1]) for run in runs)
        anchor = statistics.median(int(run[2]) for run in runs)
        print(f"{name}: {size} bytes at {HEAP}, {free} bytes free before; verify"
              f" {size / ours:.1f} MB/s ({ours / 1000:.1f} ms), hashlib.sha256"
              f" {size / anchor:.1f} MB/s, ratio {anchor / ours:.2f}")  # fmt: skip
