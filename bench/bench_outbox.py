"""Outbox append cost on a flash-like file, beside a raw append of the same bytes.

Run from the repository root::

    .venv/bin/python -m bench.bench_outbox [--records N] [--runs N] [--dir /dev/shm] [--json]

Each run appends *records* metrics records (the failure capture's, about 60 bytes of
CBOR) to an :class:`~device_runtime.core.outbox.Outbox` on the CPython port's
file-backed flash (64 KiB, 4 KiB sectors: it wraps, erases and drops as a full device
does), every append flushed (``fsync``) as the outbox does. Anchor in the same run: the
same encoded records appended with ``os.write`` to a plain file, each followed by
``os.fsync``: the floor any durable append pays. Reported: appends per second of each,
the ratio (outbox over anchor), and bytes written to the medium per record (the
record's framing, and the sector erases amortised). Medians of ``--runs`` runs after a
warm-up. Nothing asserts on time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from device_runtime.core import cbor
from device_runtime.core.outbox import Outbox, encode_record
from device_runtime.ports.cpython.block_device import FileBlockDevice

SIZE = 64 * 1024
SECTOR = 4096


class CountingFlash(FileBlockDevice):
    """The port's flash, counting the bytes written (an erase writes 0xff over its sector
    through ``write_at``, so it is counted too)."""

    written = 0

    def write_at(self, offset: int, data: bytes | memoryview) -> None:
        self.written += len(data)
        super().write_at(offset, data)


def _payload(n: int) -> bytes:
    body = {"k": "metrics", "crash_free_s": n, "free_mem": 30000, "reconnects": 1}
    return cbor.dumps(body | {"fw": "1.0.0", "up": n})


def outbox_run(directory: Path, records: int) -> tuple[float, float]:
    path = directory / "outbox.img"
    path.unlink(missing_ok=True)
    flash = CountingFlash(path=path, size=SIZE, erase_size=SECTOR)
    flash.written = 0
    outbox = Outbox(flash, boot=1)
    payloads = [_payload(n) for n in range(records)]
    started = time.perf_counter()
    for payload in payloads:
        outbox.append(payload)
    elapsed = time.perf_counter() - started
    flash.close()
    return records / elapsed, flash.written / records


def raw_run(directory: Path, records: int) -> float:
    path = directory / "raw.log"
    path.unlink(missing_ok=True)
    data = [encode_record(1, n + 1, _payload(n)) for n in range(records)]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        started = time.perf_counter()
        for record in data:
            os.write(fd, record)
            os.fsync(fd)
        elapsed = time.perf_counter() - started
    finally:
        os.close(fd)
    return records / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    base = args.dir or (Path("/dev/shm") if Path("/dev/shm").is_dir() else None)
    with tempfile.TemporaryDirectory(dir=base) as tmp:
        directory = Path(tmp)
        outbox_run(directory, 100)
        raw_run(directory, 100)
        outbox_rates, raw_rates, written = [], [], []
        for _ in range(args.runs):
            rate, per_record = outbox_run(directory, args.records)
            outbox_rates.append(rate)
            written.append(per_record)
            raw_rates.append(raw_run(directory, args.records))
    result = {
        "records": args.records,
        "directory": str(base or tempfile.gettempdir()),
        "outbox_appends_per_s": round(statistics.median(outbox_rates)),
        "raw_appends_per_s": round(statistics.median(raw_rates)),
        "ratio": round(statistics.median(outbox_rates) / statistics.median(raw_rates), 2),
        "bytes_written_per_record": round(statistics.median(written), 1),
        "record_bytes": len(encode_record(1, 1, _payload(1))),
    }
    if args.json:
        print(json.dumps(result))
        return
    for key, value in result.items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
