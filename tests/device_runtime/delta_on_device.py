"""A delta update applied under MicroPython, device half of ``test_delta_under_micropython.py``.

Run from the bundle's ROMFS image by ``flash_launcher.py`` (``main(argv)`` with ``OLD
PATCH NEW MAX_SIZE [KEY_HEX]``): the old slot is read at random from file OLD, the
patch streams from PATCH, the new image goes to NEW while its SHA-256 is taken. Prints
a ``DELTA`` line: ``made SIZE SHA256 MICROSECONDS FREE_BEFORE FREE_AFTER`` or
``refused CODE REASON``. Given the release key's SEC1 point, the device then checks
the new slot as it checks any image before it counts (``signed_image.verify`` with the
MicroPython crypto port) and prints a second line: ``verified VERSION COUNTER HASH``
or ``image-refused REASON``.
"""

import gc
import hashlib
import os
import time

PORTABLE_HELPER = True
MARK = "DELTA"


def main(argv):
    from device_runtime.core.delta_patch import DeltaError, apply_patch

    old_path, patch_path, new_path, max_size = argv[0], argv[1], argv[2], int(argv[3])
    old_size = os.stat(old_path)[6]
    digest = hashlib.sha256()
    with open(old_path, "rb") as old, open(patch_path, "rb") as patch, open(new_path, "wb") as new:

        def read_at(offset, n):
            old.seek(offset)
            return old.read(n)

        def write(chunk):
            digest.update(chunk)
            new.write(chunk)

        gc.collect()
        free = gc.mem_free()
        start = time.ticks_us()
        try:
            made = apply_patch(patch.read, read_at, old_size, write, max_size)
        except DeltaError as exc:
            print(MARK, "refused", exc.code, exc.reason)
            return
        elapsed = time.ticks_diff(time.ticks_us(), start)
    gc.collect()
    print(MARK, "made", made, digest.digest().hex(), elapsed, free, gc.mem_free())
    if len(argv) > 4:
        print(MARK, _verdict(new_path, bytes.fromhex(argv[4]), made))


def _verdict(path, key, size):
    from device_runtime.core import signed_image
    from device_runtime.ports.micropython import crypto

    with open(path, "rb") as slot:
        try:
            image = signed_image.verify(slot.read, key, crypto.verify_ecdsa_der, size)
        except signed_image.ImageError as exc:
            return "image-refused " + exc.reason
    return f"verified {image.version} {image.security_counter} {image.image_hash.hex()}"
