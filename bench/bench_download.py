"""Download-and-install throughput over HTTP, beside a raw socket read and hash of the same bytes,
and the bandwidth cap's accuracy.

Run from the repository root::

    .venv/bin/python -m bench.bench_download [--runs N] [--json]

1. Throughput: ``download.Downloader.install`` of a signed image (1, 4 and 15 MiB)
   from a loopback HTTP server (``tests/device_runtime/download_server.py``,
   a ThreadingHTTPServer) through the core's ``http_client`` into the CPython
   port's file-backed flash in /dev/shm, checked as every install is (TUF
   length and SHA-256, the image's hash and signature, a software root of
   trust's counter), with the download record written at every 64 KiB.
   Anchors, in the same run, from the same server: a raw socket that sends the
   same GET and reads the answer in 64 KiB pieces into ``hashlib.sha256``, and
   ``curl -o /dev/null``. The ratio is the download's throughput over the raw
   socket's.
2. Cap accuracy: the same download of 1 MiB (4 MiB for the highest cap) with a
   ``BandwidthCap`` on the system clock at several rates; the achieved rate
   (bytes over wall time, the install's own time included) over the cap, beside what
   the bucket's initial burst alone makes of it (the whole over the whole less the burst:
   the first burst's bytes come at once).

Medians of ``--runs`` runs after a warm-up. Nothing asserts on time.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from io import BytesIO
from pathlib import Path
from typing import Any

from bench.result_table import print_rows
from device_runtime.core.bandwidth_cap import BandwidthCap
from device_runtime.core.download import Downloader, Target
from device_runtime.core.image_trust import ImageTrust
from device_runtime.core.retry_schedule import RetrySchedule
from device_runtime.core.slot_install import provision
from device_runtime.core.slots import slot_pair
from device_runtime.image_signer import public_point, sign_image
from device_runtime.ports.cpython import crypto
from device_runtime.ports.cpython.block_device import FileBlockDevice
from device_runtime.ports.cpython.clock import SystemClock
from device_runtime.ports.cpython.storage import DirectoryStore
from device_runtime.rot.software import SoftwareRootOfTrust
from tests.device_runtime.download_server import DownloadServer

MIB = 1 << 20
SIZES = (1, 4, 15)
CAPS = ((250_000, 1), (1_000_000, 1), (4_000_000, 4))
"""(bytes/s, MiB downloaded): about a second each."""
MODEL = "bench-board"
CHUNK = 64 * 1024


def _key() -> Any:
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.derive_private_key(0xBE_4C4, ec.SECP256R1())


class _Device:
    def __init__(self, directory: Path, slot_size: int) -> None:
        self.flash = FileBlockDevice(path=directory / "flash", size=2 * slot_size)
        (directory / "rot").mkdir(exist_ok=True)
        rot = SoftwareRootOfTrust.open(store=DirectoryStore(directory=directory / "rot"),
                                       random_bytes=crypto.random_bytes,
                                       sign_es256=crypto.sign_es256)  # fmt: skip
        key = public_point(_key().public_key())
        self.trust = ImageTrust(key, crypto.verify_ecdsa_der, rot, CHUNK)
        self.slots = slot_pair(self.flash, CHUNK)
        self.store = DirectoryStore(directory=directory / "agent")
        first = sign_image(b"\x00" * 1024, key=_key(), version="1.0.0", security_counter=1)
        provision(self.slots, BytesIO(first).read, self.trust)

    def download(self, target: Target, cap: BandwidthCap | None = None) -> float:
        clock = SystemClock()
        downloader = Downloader(self.store, RetrySchedule(clock, crypto.random_bytes), cap)
        started = time.perf_counter()
        downloader.install(self.slots, 0, self.trust, target, MODEL)
        return time.perf_counter() - started


def _scratch() -> Path:
    shm = Path("/dev/shm")
    return Path(tempfile.mkdtemp(prefix="sevenfold-bench-", dir=shm if shm.is_dir() else None))


def _image(mib: int) -> bytes:
    return sign_image(bytes(mib * MIB - 4096), key=_key(), version="1.1.0", security_counter=2)


def _raw_socket(port: int, path: str, length: int) -> float:
    """GET with a plain socket, the body read in 64 KiB pieces into SHA-256."""
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        sha, head, got = hashlib.sha256(), b"", 0
        while b"\r\n\r\n" not in head:
            head += sock.recv(CHUNK)
        body = head.split(b"\r\n\r\n", 1)[1]
        sha.update(body)
        got = len(body)
        while got < length and (piece := sock.recv(CHUNK)):
            sha.update(piece)
            got += len(piece)
    assert got == length
    return time.perf_counter() - started


def _curl(url: str) -> float:
    started = time.perf_counter()
    subprocess.run(["curl", "-s", "-o", "/dev/null", url], check=True)
    return time.perf_counter() - started


def throughput(runs: int) -> list[dict[str, Any]]:
    rows = []
    for mib in SIZES:
        image = _image(mib)
        directory = _scratch()
        try:
            with DownloadServer({"/image": image}) as server:
                device = _Device(directory, (mib + 1) * MIB)
                target = Target("image", server.url + "/image", len(image),
                                hashlib.sha256(image).digest(), [MODEL])  # fmt: skip
                port = int(server.url.rsplit(":", 1)[1])
                times: dict[str, list[float]] = {"download": [], "socket": [], "curl": []}
                for run in range(runs + 1):
                    measured = {
                        "download": device.download(target),
                        "socket": _raw_socket(port, "/image", len(image)),
                        "curl": _curl(server.url + "/image"),
                    }
                    if run:
                        for name, seconds in measured.items():
                            times[name].append(seconds)
                device.flash.close()
        finally:
            shutil.rmtree(directory)
        median = {name: statistics.median(values) for name, values in times.items()}
        rows.append({"MiB": mib,
                     "download+install MB/s": len(image) / median["download"] / 1e6,
                     "socket+sha256 MB/s": len(image) / median["socket"] / 1e6,
                     "curl MB/s": len(image) / median["curl"] / 1e6,
                     "ratio": median["socket"] / median["download"]})  # fmt: skip
    return rows


def cap_accuracy(runs: int) -> list[dict[str, Any]]:
    rows = []
    for rate, mib in CAPS:
        image = _image(mib)
        directory = _scratch()
        try:
            with DownloadServer({"/image": image}) as server:
                device = _Device(directory, (mib + 1) * MIB)
                target = Target("image", server.url + "/image", len(image),
                                hashlib.sha256(image).digest(), [MODEL])  # fmt: skip
                achieved = []
                for run in range(runs + 1):
                    seconds = device.download(target, BandwidthCap(SystemClock(), rate))
                    if run:
                        achieved.append(len(image) / seconds)
                device.flash.close()
        finally:
            shutil.rmtree(directory)
        median = statistics.median(achieved)
        burst = BandwidthCap(SystemClock(), rate).burst_credit // 1000
        rows.append({"cap B/s": rate, "MiB": mib, "achieved B/s": round(median),
                     "achieved / cap": median / rate,
                     "burst's share": len(image) / (len(image) - burst)})  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    result = {"throughput": throughput(options.runs), "cap": cap_accuracy(options.runs)}
    if options.json:
        print(json.dumps(result, indent=2))
        return
    print_rows(result)


if __name__ == "__main__":
    main()
