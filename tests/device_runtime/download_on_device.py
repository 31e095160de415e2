"""Downloads under MicroPython, device half of ``test_download_under_micropython.py``.

``main([PHASE, DIRECTORY, KEY_HEX, ...])`` is one stage of a board whose file-backed
flash, software root of trust and agent storage live in DIRECTORY, each stage a fresh
interpreter (a reboot), run from ROMFS at 64 KiB:

``full RUNNING ATTEMPTS URL LENGTH SHA256``  the application running from slot
               RUNNING downloads the image into the other slot over HTTP with the core's
               Downloader (resuming from its record) and marks it pending
``update RUNNING URL LENGTH SHA256 DELTA_URL DELTA_LENGTH DELTA_SHA256 BASE SIZE``  the
               application, running the image of digest BASE and SIZE bytes, installs by
               ``delta_update.install_update`` (the delta if it applies, else or on its
               failure the full image) and marks it pending

The application stages are what runs after the bootloader (whose own stage is
``slots_on_device``'s ``boot``): they are told the running slot and image, as MCUboot
tells an application, and do not load the boot selection.

Each prints a ``DOWNLOAD`` line: ``installed VERSION VIA RECEIVED FAILURE`` or ``failed
CODE OFFSET REASON`` (OFFSET: what the record says is durable), the heap free when the
download began, then ``DOWNLOAD done MILLISECONDS FREE`` with the heap left. The board is
``slots_on_device.board`` (whose ``provision`` stage the factory runs first): a collection
every 4 KiB allocated and before each signature check, 512-byte slot reads.
"""

import gc
import time

from tests.device_runtime.slots_on_device import board

PORTABLE_HELPER = True
MARK = "DOWNLOAD"


def main(argv):
    from device_runtime.ports.micropython import crypto

    phase, directory, key_hex = argv[0], argv[1], argv[2]
    started = time.ticks_ms()
    flash, slots, trust = board(directory, key_hex)
    _download(phase, slots, trust, directory, argv[3:], crypto.random_bytes)
    flash.close()
    gc.collect()
    print(MARK, "done", time.ticks_diff(time.ticks_ms(), started), gc.mem_free())


class _Running:
    """What the bootloader tells the application of the image it booted (MCUboot shares its
    boot record the same way): its measured digest and its size."""

    def __init__(self, image_hash, size):
        self.image_hash = image_hash
        self.size = size


def _download(phase, slots, trust, directory, args, random_bytes):
    from device_runtime.core import download_record
    from device_runtime.core.download import Downloader, Target
    from device_runtime.core.retry_schedule import RetrySchedule
    from device_runtime.core.slot_install import mark_pending
    from device_runtime.ports.micropython.clock import SystemClock
    from device_runtime.ports.micropython.storage import DirectoryStore

    model = "sevenfold-board"
    running = int(args[0])
    store = DirectoryStore(directory=directory + "/agent")
    attempts = int(args[1]) if phase == "full" else 3
    args = args[2:] if phase == "full" else args[1:]
    schedule = RetrySchedule(SystemClock(), random_bytes, base_ms=10, cap_ms=50,
                             attempts=attempts)  # fmt: skip
    downloader = Downloader(store, schedule, timeout_s=5)
    image = Target("new.img", args[0], int(args[1]), bytes.fromhex(args[2]), [model])
    via, failure = "full", "-"
    gc.collect()
    free = gc.mem_free()
    try:
        if phase == "full":
            made = downloader.install(slots, running, trust, image, model)
        else:
            from device_runtime.core.delta_update import install_update

            delta = Target("old-to-new.delta", args[3], int(args[4]), bytes.fromhex(args[5]),
                           [model], bytes.fromhex(args[6]))  # fmt: skip
            booted = _Running(bytes.fromhex(args[6]), int(args[7]))
            done = install_update(downloader, slots, running, booted, trust, image, delta, model)
            made, via, failure = done.image, done.via, done.delta_failure or "-"
    except Exception as exc:
        record = download_record.load(store)
        offset = record if isinstance(record, str) else record.offset
        print(MARK, "failed", getattr(exc, "code", type(exc).__name__), offset or 0, exc)
        return
    mark_pending(slots, running)
    print(MARK, "installed", made.version, via, downloader.received, failure)
    print(MARK, "free before the download", free)
