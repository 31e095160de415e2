"""Passive sensor throughput against tshark on the same capture, and memory at 100,000 flows.

The Ethernet frames of every shared ICS capture are replicated into one
temporary pcap of at least ``--packets`` frames (default 1,000,000). Each
replica moves the IPv4 addresses into its own range so replicas are distinct
conversations rather than retransmissions, and timestamps advance by 10 µs
per frame. Three timings each, same file, same run:

* our ``Sensor`` alone (capture reading, flow tracking, reassembly, dissection),
* the full monitor pipeline (sensor + inventory + baseline learning + rules),
* ``tshark -r FILE -T fields -e frame.number -e <the same protocol fields>``.

Memory: 100,000 concurrent Modbus/TCP conversations (SYN then one request
each) are fed to a sensor under tracemalloc; the peak of traced allocations and
the process's ru_maxrss are reported. Run from the repository root::

    .venv/bin/python -m bench.bench_monitor [--packets N] [--json]

Nothing here asserts on time; the ratios are for reading.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from passive_monitor.alerts.engine import Detector
from passive_monitor.baseline import Baseline
from passive_monitor.capture import read_capture
from passive_monitor.inventory import InventoryBuilder
from passive_monitor.sensor import Sensor

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "pcaps"
REPEATS = 3
LINKTYPE_ETHERNET = 1
FLOWS = 100_000
TSHARK_FIELDS = (
    "frame.number",
    "modbus.func_code",
    "dnp3.al.func",
    "s7comm.param.func",
    "bacapp.confirmed_service",
    "bacapp.unconfirmed_service",
    "enip.command",
    "cip.sc",
    "iec60870_asdu.typeid",
)


def _ipv4_checksum(header: bytes) -> int:
    total = int(sum(struct.unpack(f"!{len(header) // 2}H", header)))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _relocate(frame: bytes, replica: int) -> bytes:
    """Put an Ethernet/IPv4 frame's addresses into the replica's own 16-bit range."""
    if len(frame) < 34 or frame[12:14] != b"\x08\x00" or frame[14] >> 4 != 4:
        return frame
    ihl = (frame[14] & 0x0F) * 4
    header = bytearray(frame[14 : 14 + ihl])
    if len(header) < 20:
        return frame
    high, low = (replica >> 8) & 0xFF, replica & 0xFF
    header[13], header[14] = header[13] ^ high, header[14] ^ low
    header[17], header[18] = header[17] ^ high, header[18] ^ low
    header[10:12] = b"\x00\x00"
    header[10:12] = struct.pack("!H", _ipv4_checksum(bytes(header)))
    return frame[:14] + bytes(header) + frame[14 + ihl :]


def source_frames() -> list[bytes]:
    frames: list[bytes] = []
    for path in sorted(SHARED.rglob("*.pcap*")):
        for _, linktype, data in read_capture(path):
            if linktype == LINKTYPE_ETHERNET:
                frames.append(data)
    return frames


def write_replicated(path: Path, target: int) -> int:
    """Write at least *target* frames; returns how many were written."""
    base = source_frames()
    written = 0
    with path.open("wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, LINKTYPE_ETHERNET))
        replica = 0
        while written < target:
            for frame in base:
                ticks = written * 10
                out.write(
                    struct.pack(
                        "<IIII", ticks // 1_000_000, ticks % 1_000_000, len(frame), len(frame)
                    )
                )
                out.write(_relocate(frame, replica))
                written += 1
            replica += 1
    return written


def timed(run: Callable[[], int], repeats: int = REPEATS) -> tuple[list[float], int]:
    times: list[float] = []
    result = 0
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return times, result


def run_sensor(path: Path) -> int:
    sensor = Sensor()
    for _ in sensor.observe_file(path):
        pass
    return sensor.stats.packets


def run_pipeline(path: Path) -> int:
    sensor = Sensor()
    builder = InventoryBuilder()
    detector = Detector(baseline=Baseline(), learn_frames=100_000)
    for observation in sensor.observe_file(path):
        builder.observe(observation)
        detector.observe(observation)
    builder.snapshot()
    return sensor.stats.packets


def run_tshark(tshark: str, path: Path) -> int:
    command = [tshark, "-n", "-r", str(path), "-T", "fields"]
    for name in TSHARK_FIELDS:
        command += ["-e", name]
    lines = 0
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as proc:
        assert proc.stdout is not None
        for _ in proc.stdout:
            lines += 1
    return lines


def _tcp_frame(client: bytes, sport: int, flags: int, payload: bytes, seq: int) -> bytes:
    """A client-to-server Modbus/TCP segment (checksum-free TCP, valid IPv4 header)."""
    tcp = struct.pack("!HHIIBBHHH", sport, 502, seq, 0, 5 << 4, flags, 8192, 0, 0) + payload
    header = bytearray(
        struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0, 64, 6, 0, client, SERVER_IP)
    )
    header[10:12] = struct.pack("!H", _ipv4_checksum(bytes(header)))
    return MACS + b"\x08\x00" + bytes(header) + tcp


SERVER_IP = socket.inet_aton("10.0.0.1")
MACS = b"\x00\x11\x22\x33\x44\x55\x00\x0e\x8c\x00\x00\x01"
READ_REQUEST = bytes.fromhex("000100000006010300000004")


def many_flows(count: int) -> Iterator[tuple[float, int, bytes]]:
    for index in range(count):
        address = struct.pack("!BBH", 172, 16 + index // 65536, index & 0xFFFF)
        sport = 40000 + index % 20000
        ts = index * 1e-4
        yield (ts, LINKTYPE_ETHERNET, _tcp_frame(address, sport, 0x02, b"", 1000))
        yield (ts, LINKTYPE_ETHERNET, _tcp_frame(address, sport, 0x18, READ_REQUEST, 1001))


def flow_memory(count: int) -> dict[str, Any]:
    tracemalloc.start()
    sensor = Sensor(max_flows=count)
    observations = 0
    for _ in sensor.observe_packets(many_flows(count)):
        observations += 1
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    stats = sensor.stats
    return {
        "flows": stats.flows_active,
        "evicted": stats.flows_evicted,
        "observations": observations,
        "tracemalloc_peak_mib": round(peak / 2**20, 1),
        "bytes_per_flow": round(peak / max(stats.flows_active, 1)),
        "ru_maxrss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=1_000_000)
    parser.add_argument("--flows", type=int, default=FLOWS)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    tshark = shutil.which("tshark")
    if tshark is None:
        sys.exit("tshark is required (apt-get install tshark)")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "replicated.pcap"
        packets = write_replicated(path, args.packets)
        size = path.stat().st_size
        sensor_times, sensor_packets = timed(lambda: run_sensor(path))
        pipeline_times, _ = timed(lambda: run_pipeline(path))
        tshark_times, tshark_lines = timed(lambda: run_tshark(tshark, path))
    memory = flow_memory(args.flows)
    sensor_median = statistics.median(sensor_times)
    pipeline_median = statistics.median(pipeline_times)
    tshark_median = statistics.median(tshark_times)
    report = {
        "packets": packets,
        "file_mib": round(size / 2**20, 1),
        "sensor_packets_seen": sensor_packets,
        "tshark_lines": tshark_lines,
        "sensor_s": [round(t, 2) for t in sensor_times],
        "pipeline_s": [round(t, 2) for t in pipeline_times],
        "tshark_s": [round(t, 2) for t in tshark_times],
        "sensor_median_s": round(sensor_median, 2),
        "pipeline_median_s": round(pipeline_median, 2),
        "tshark_median_s": round(tshark_median, 2),
        "sensor_pps": round(packets / sensor_median),
        "pipeline_pps": round(packets / pipeline_median),
        "tshark_pps": round(packets / tshark_median),
        "tshark_over_sensor": round(tshark_median / sensor_median, 2),
        "tshark_over_pipeline": round(tshark_median / pipeline_median, 2),
        "pipeline_overhead_pct": round(100 * (pipeline_median / sensor_median - 1), 1),
        "memory": memory,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{packets} packets ({report['file_mib']} MiB), medians of {REPEATS}:")
    print(f"  sensor alone   {sensor_median:7.2f} s  {report['sensor_pps']:>9} packets/s")
    print(f"  full pipeline  {pipeline_median:7.2f} s  {report['pipeline_pps']:>9} packets/s")
    print(f"  inventory + detection on top of the sensor: {report['pipeline_overhead_pct']}%")
    print(f"  tshark         {tshark_median:7.2f} s  {report['tshark_pps']:>9} packets/s")
    print(f"  tshark time / sensor time:   {report['tshark_over_sensor']}")
    print(f"  tshark time / pipeline time: {report['tshark_over_pipeline']}")
    print(
        f"{memory['flows']} flows: tracemalloc peak {memory['tracemalloc_peak_mib']} MiB "
        f"({memory['bytes_per_flow']} B/flow), ru_maxrss {memory['ru_maxrss_mib']} MiB"
    )


if __name__ == "__main__":
    main()
