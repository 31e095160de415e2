"""Evidence made under MicroPython, device half of ``test_evidence_under_micropython.py``.

Run from the bundle's ROMFS image by ``flash_launcher.py`` (``main(argv)`` with
``PHASE KIND DIRECTORY [NONCE_HEX]``). Phase ``csr`` prints the DeviceID CSR,
which the host's manufacturer CA certifies into ``DIRECTORY/deviceid.der``;
phase ``token`` boots the same device again, measures the boot, holds back a
fifth of the free heap in 256-byte pieces (the margin of
``docs/protocol.md``: the rest of a firmware), builds the token several times
and prints each run's time, bytes allocated and the free heap before the
reserve, then the token, as ``EVIDENCE`` lines the host reads back.
"""

import gc
import hashlib
import time

PORTABLE_HELPER = True
MARK = "EVIDENCE"
DEVICE_ID = "device-0042"
RUNS = 5
RESERVE_PERCENT = 20
PIECE = 256
IMAGE = hashlib.sha256(b"1.0.0").digest()
"""The firmware measurement ``tests.device_runtime.rot.backends`` boots DICE with."""
CONFIG = hashlib.sha256(b"config 1").digest()
INPUTS = {
    "nonce": bytes(range(32)),
    "device_id": DEVICE_ID,
    "hwmodel": "conformance-board",
    "swname": "sevenfold-firmware",
    "swversion": "1.0.0",
    "security_version": 1,
    "oemid": b"\x00\x1b\xc5",
    "dbgstat": 2,
    "bootcount": 7,
    "bootseed": bytes(range(100, 132)),
    "uptime": 42,
    "image_digest": IMAGE,
    "config_digest": CONFIG,
}
"""What the device states, as ``device_runtime.core.evidence.token`` takes it (the host
checks the token against the same values)."""


def _print_hex(name, data):
    for start in range(0, len(data), 48):
        print(MARK, name, data[start : start + 48].hex())


def main(argv):
    from tests.device_runtime.rot.backends import Backend

    phase, kind, directory = argv[0], argv[1], argv[2]
    rot = Backend(kind, directory).open("a")
    if phase == "csr":
        _print_hex("csr", rot.csr(DEVICE_ID))
        return
    with open(directory + "/deviceid.der", "rb") as file:
        certificate = file.read()
    inputs = dict(INPUTS)
    inputs["nonce"] = bytes.fromhex(argv[3])
    import micropython

    from device_runtime.core import evidence

    evidence.measure_boot(rot, IMAGE, CONFIG)
    gc.collect()
    free = gc.mem_free()
    held = [bytearray(PIECE) for _ in range(free * RESERVE_PERCENT // 100 // PIECE)]
    token = b""
    for _ in range(RUNS):
        token = b""
        gc.collect()
        before = micropython.mem_total()  # every byte allocated, collected or not
        start = time.ticks_us()
        token = evidence.token(rot, deviceid_certificate=certificate, **inputs)
        elapsed = time.ticks_diff(time.ticks_us(), start)
        print(MARK, "run", elapsed, micropython.mem_total() - before, free, len(held) * PIECE)
    del held
    _print_hex("token", token)
