"""Images verified under MicroPython: the device half of ``test_under_micropython.py``.

Run from the bundle's ROMFS image by ``flash_launcher.py`` as ``main([KEY_HEX,
DIRECTORY, REPEATS])``: every file in DIRECTORY is verified against the key,
streamed from the file system a chunk at a time, and its verdict printed as an
``IMAGE`` line (``ok VERSION COUNTER HASH`` or ``refused REASON``). Files whose
name starts with ``large`` are verified REPEATS times and each run's time
printed, beside the time ``hashlib.sha256`` takes over the same file read the
same way (the anchor of ``bench/bench_image_verify.py``), and the heap free
before the first run.
"""

import gc
import hashlib
import os
import time

PORTABLE_HELPER = True
MARK = "IMAGE"
CHUNK = 4096


def _verdict(path, key):
    from device_runtime.core import signed_image
    from device_runtime.core.signed_image import ImageError
    from device_runtime.ports.micropython import crypto

    with open(path, "rb") as stream:
        try:
            image = signed_image.verify(stream.read, key, crypto.verify_ecdsa_der)
        except ImageError as exc:
            return "refused " + exc.reason
    return f"ok {image.version} {image.security_counter} {image.image_hash.hex()}"


def _hashed(path):
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while True:
            part = stream.read(CHUNK)
            if not part:
                return digest.digest()
            digest.update(part)


def _timed(call, *args):
    gc.collect()
    start = time.ticks_us()
    call(*args)
    return time.ticks_diff(time.ticks_us(), start)


def main(argv):
    key = bytes.fromhex(argv[0])
    directory = argv[1]
    repeats = int(argv[2])
    for name in sorted(os.listdir(directory)):
        path = directory + "/" + name
        gc.collect()
        free = gc.mem_free()
        print(MARK, name, _verdict(path, key))
        if name.startswith("large"):
            size = os.stat(path)[6]
            for _ in range(repeats):
                ours = _timed(_verdict, path, key)
                anchor = _timed(_hashed, path)
                print(MARK, name, "timing", size, ours, anchor, free)
