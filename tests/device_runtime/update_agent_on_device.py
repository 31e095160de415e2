"""The update agent under MicroPython, device half of ``test_update_agent_under_micropython.py``.

``main(["update", DIRECTORY, KEY_HEX, RUNNING_SLOT, VERSION, IMAGE_HASH_HEX, SIZE, URL])``
is the application, running the image the bootloader named (slot, version, measured
digest, size, as MCUboot shares its boot record), checking once for an update with the
core's ``UpdateAgent``: the TUF client refreshes from URL (``…/metadata/``) starting from
the ``root.json`` the factory put in DIRECTORY/tuf, reads the model's pointer, and
installs what it names into the other slot through the ``Downloader``, then marks it
pending. The board is ``slots_on_device.board`` (its software root of trust, file-backed
flash, a collection every 4 KiB allocated). It prints ``AGENT pending VERSION`` (or
``AGENT none``, or ``AGENT failed CODE REASON``), the heap free when the check began, and
``AGENT done MILLISECONDS FREE``.
"""

import gc
import time

from tests.device_runtime.slots_on_device import board

PORTABLE_HELPER = True
MARK = "AGENT"
MODEL = "sevenfold-board"


class _Image:
    """The bootloader's record of the image it booted."""

    def __init__(self, version, image_hash, size):
        self.version = version
        self.image_hash = image_hash
        self.size = size


class _Boot:
    def __init__(self, slot, image):
        self.slot = slot
        self.image = image
        self.trial = False
        self.reverted = None
        self.revert_reason = None


def _probe():
    """The heap each part of the update path takes once imported, in the order ``main`` loads
    them (``AGENT probe MODULE BYTES``)."""
    gc.collect()
    before = gc.mem_free()
    for name in ("device_runtime.core.errors", "device_runtime.core.image_trust",
                 "device_runtime.core.slots", "device_runtime.rot.software",
                 "device_runtime.ports.micropython.crypto", "device_runtime.core.http_client",
                 "device_runtime.core.tuf.updater", "device_runtime.core.tuf.file_directory",
                 "device_runtime.core.download", "device_runtime.core.delta_update",
                 "device_runtime.core.update_agent"):  # fmt: skip
        __import__(name)
        gc.collect()
        now = gc.mem_free()
        print(MARK, "probe", name, before - now)
        before = now


def main(argv):
    if argv[0] == "probe":
        _probe()
    else:
        started = time.ticks_ms()
        try:
            _check(argv)
        except MemoryError as exc:  # the update path does not load: the board stays as it is
            print(MARK, "failed too-large: the update path does not fit in this heap:", exc)
        print(MARK, "done", time.ticks_diff(time.ticks_ms(), started), gc.mem_free())


def _check(argv):
    from device_runtime.core.download import Downloader
    from device_runtime.core.http_client import http_get
    from device_runtime.core.retry_schedule import RetrySchedule
    from device_runtime.core.tuf.file_directory import FileDirectory
    from device_runtime.core.tuf.updater import Limits, Updater
    from device_runtime.core.update_agent import UpdateAgent
    from device_runtime.ports.micropython import crypto
    from device_runtime.ports.micropython.clock import SystemClock
    from device_runtime.ports.micropython.storage import DirectoryStore

    _, directory, key_hex, running, version, image_hash, size, url = argv
    flash, slots, trust = board(directory, key_hex)
    clock = SystemClock()
    updater = Updater(metadata_store=FileDirectory(directory + "/tuf"), fetcher=http_get,
                      crypto=crypto, clock=clock, metadata_url=url + "/metadata/",
                      targets_store=None, targets_url=url + "/targets/",
                      limits=Limits())  # fmt: skip
    schedule = RetrySchedule(clock, crypto.random_bytes, base_ms=10, cap_ms=50, attempts=3)
    store = DirectoryStore(directory=directory + "/agent")
    agent = UpdateAgent(updater=updater, downloader=Downloader(store, schedule, timeout_s=5),
                        store=store, model=MODEL)  # fmt: skip
    boot = _Boot(int(running), _Image(version, bytes.fromhex(image_hash), int(size)))
    gc.collect()
    free = gc.mem_free()
    try:
        pending = agent.update(slots, boot, trust)
    except Exception as exc:  # a device reports what stopped it; so does this stage
        print(MARK, "failed", getattr(exc, "code", type(exc).__name__), exc)
        pending = None
    else:
        if agent.failure:
            print(MARK, "failed", agent.failure)
        else:
            print(MARK, "pending" if pending else "none", pending or "-")
    print(MARK, "free when the check began", free)
    flash.close()
    gc.collect()
