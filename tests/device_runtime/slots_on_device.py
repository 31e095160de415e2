"""A/B updates under MicroPython, device half of ``test_slots_under_micropython.py``.

``main([PHASE, DIRECTORY, MODEL, KEY_HEX, ARG])`` is one stage of a board
whose file-backed flash and software root of trust live in DIRECTORY, each a
fresh interpreter:

``provision``  the factory writes ``old.img`` into slot A, confirmed
``boot``       the bootloader selects the slot to boot and prints a ``SLOTS
               boot`` line (slot, version, trial, counter, revert reason)
``healthy`` / ``unhealthy``  a boot whose image then runs its trial's health
               check (passes / raises)
``install``    the running image (ARG = ``RUNNING_SLOT:NAME``) streams
               ``NAME.img`` (its SHA-256 in ``NAME.sha256``) into the other
               slot and marks it pending: an application started after the
               bootloader, as with MCUboot, whose memory it then has

Each prints the time it took and its free heap (``SLOTS done``). What a
64 KiB board does to fit, with room to spare: it collects every 4 KiB
allocated (``gc.threshold``) and before each signature check, and reads
images 512 bytes at a time into one buffer; streaming an image otherwise
leaves a heap of small holes where the signature's big integers find no
contiguous run.
"""

import gc
import time

PORTABLE_HELPER = True
MARK = "SLOTS"
FLASH_SIZE = 2 * 320 * 1024
PIECE = 512


def _reader(source):
    """``read(n)`` over an open file into one reused buffer, as a download reads a socket."""
    buffer = memoryview(bytearray(PIECE))

    def read(n):
        view = buffer[:n]
        return view[: source.readinto(view)]

    return read


def _collected(verify_signature):
    """The crypto port's check, after a collection (see the module docstring)."""

    def verify(public_key, digest, signature):
        gc.collect()
        verify_signature(public_key, digest, signature)

    return verify


def _unhealthy():
    raise OSError("the sensor does not answer")


def board(directory, key_hex):
    """The board's flash, slots and image trust (its software root of trust in DIRECTORY)."""
    from device_runtime.core.image_trust import ImageTrust
    from device_runtime.core.slots import slot_pair
    from device_runtime.ports.micropython import crypto
    from device_runtime.ports.micropython.block_device import FileBlockDevice
    from device_runtime.ports.micropython.storage import DirectoryStore
    from device_runtime.rot.software import SoftwareRootOfTrust

    gc.threshold(4096)  # see the module docstring
    flash = FileBlockDevice(path=directory + "/flash", size=FLASH_SIZE)
    rot = SoftwareRootOfTrust.open(store=DirectoryStore(directory=directory + "/rot"),
                                   random_bytes=crypto.random_bytes,
                                   sign_es256=crypto.sign_es256)  # fmt: skip
    trust = ImageTrust(bytes.fromhex(key_hex), _collected(crypto.verify_ecdsa_der), rot)
    return flash, slot_pair(flash, PIECE), trust


def main(argv):
    phase, directory, model, key_hex, name = argv
    started = time.ticks_ms()
    flash, slots, trust = board(directory, key_hex)
    if phase == "provision":
        from device_runtime.core.slot_install import provision

        with open(directory + "/old.img", "rb") as source:
            provision(slots, _reader(source), trust)
    elif phase == "install":
        _install(slots, trust, directory, model, name)
    else:
        _boot(phase, slots, trust)
    flash.close()
    gc.collect()
    print(MARK, "done", time.ticks_diff(time.ticks_ms(), started), gc.mem_free())


def _install(slots, trust, directory, model, name):
    """The running image installs NAME (``running:NAME``) into the other slot."""
    from device_runtime.core.slot_install import install, mark_pending

    running, name = name.split(":")
    with open(directory + "/" + name + ".sha256") as digest:
        sha256 = bytes.fromhex(digest.read())
    with open(directory + "/" + name + ".img", "rb") as source:
        length = source.seek(0, 2)
        source.seek(0)
        install(slots, int(running), _reader(source), trust, length=length,
                sha256=sha256, hardware=[model], model=model)  # fmt: skip
    mark_pending(slots, int(running))


def _boot(phase, slots, trust):
    from device_runtime.core.boot_selection import select

    boot = select(slots, trust)
    revert = boot.revert_reason or "-"
    print(MARK, "boot", boot.slot, boot.image.version, int(boot.trial), trust.floor(), revert)
    if phase in ("healthy", "unhealthy"):
        from device_runtime.core.trial_boot import confirm_within
        from device_runtime.ports.micropython.clock import SystemClock

        check = _unhealthy if phase == "unhealthy" else lambda: True
        confirm_within(slots, boot, trust, check, SystemClock(), 1000)
