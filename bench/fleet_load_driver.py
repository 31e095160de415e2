"""A load driver: thousands of mTLS devices in one process, each its own MQTT session.

Each simulated device holds its own certificate (CN = device id), so the
broker's ``%u`` ACLs apply to it exactly as to a real device; it speaks MQTT
3.1.1 with the same packet codec the MicroPython port uses, sends requests
with QoS 1 and matches answers by correlation id. A ``busy`` or
``rate-limited`` answer is honoured the way the device agent does (wait
``retry_after`` plus up to half of it again, then resend); the latency of a
request is from its first send to its final answer, retries included.

Run as its own process (``python -m bench.fleet_load_driver SPEC.json``) so
that its CPU is not the server's; it prints one JSON result line.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import random
import ssl
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from device_runtime.core import protocol
from device_runtime.core.errors import ProtocolError
from device_runtime.ports.micropython import mqtt_packet as packet

RETRY = ("busy", "rate-limited", "unavailable")
ANSWER_TIMEOUT_S = 10.0


@dataclass
class Outcome:
    latencies: list[float] = field(default_factory=list)
    lost: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    retries: int = 0


class Device:
    """One device's MQTT session and its outstanding requests, on one plane's topics."""

    def __init__(
        self, device_id: str, prefix: str, *, leaves: tuple[str, str] = ("up", "down")
    ) -> None:
        """*leaves* are the up and down topic leaves: ``("att/up", "att/down")`` for the
        attestation plane."""
        self.device_id = device_id
        self.up = protocol.topic(prefix, device_id, leaves[0])
        self.down = protocol.topic(prefix, device_id, leaves[1])
        self.writer: asyncio.StreamWriter | None = None
        self.waiting: dict[bytes, asyncio.Future[protocol.Envelope]] = {}
        self.next_packet_id = 1
        self.seq = 0

    async def connect(
        self, host: str, port: int, context: ssl.SSLContext, subscribed: asyncio.Event
    ) -> None:
        reader, writer = await asyncio.open_connection(
            host, port, ssl=context, server_hostname="localhost"
        )
        self.writer = writer
        writer.write(packet.encode_connect(self.device_id, 600))
        writer.write(packet.encode_subscribe(1, self.down, 1))
        await writer.drain()
        asyncio.get_running_loop().create_task(self._read(reader, subscribed))

    async def _read(self, reader: asyncio.StreamReader, subscribed: asyncio.Event) -> None:
        try:
            while True:
                head = await reader.readexactly(1)
                length, multiplier = 0, 1
                while True:
                    byte = (await reader.readexactly(1))[0]
                    length += (byte & 0x7F) * multiplier
                    multiplier *= 128
                    if not byte & 0x80:
                        break
                body = await reader.readexactly(length) if length else b""
                kind = head[0] >> 4
                if kind == 3:
                    self._on_publish(head[0] & 0x0F, body)
                elif kind == 9:
                    subscribed.set()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            return

    def _on_publish(self, flags: int, body: bytes) -> None:
        _topic, payload, _qos, packet_id = packet.decode_publish(flags, body)
        if packet_id and self.writer is not None:
            self.writer.write(packet.encode_puback(packet_id))
        try:
            envelope = protocol.decode(payload)
        except ProtocolError:
            return
        waiter = self.waiting.pop(envelope.correlation, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(envelope)

    async def request(
        self, kind: str, body: dict[str, object], outcome: Outcome
    ) -> protocol.Envelope | None:
        """The final answer (after honouring retries), or None when lost or refused."""
        started = time.monotonic()
        deadline = started + ANSWER_TIMEOUT_S
        while True:
            correlation = os.urandom(protocol.CORRELATION_BYTES)
            future: asyncio.Future[protocol.Envelope] = asyncio.get_running_loop().create_future()
            self.waiting[correlation] = future
            assert self.writer is not None
            packet_id = self.next_packet_id
            self.next_packet_id = packet_id % 65535 + 1
            self.writer.write(
                packet.encode_publish(
                    self.up, protocol.encode(kind, correlation, body), 1, packet_id
                )
            )
            try:
                answer = await asyncio.wait_for(future, max(deadline - time.monotonic(), 0.001))
            except TimeoutError:
                self.waiting.pop(correlation, None)
                outcome.lost += 1
                return None
            if answer.kind == "error":
                code = str(answer.body["code"])
                if code in RETRY:
                    outcome.retries += 1
                    wait = int(answer.body.get("retry_after", 1000)) / 1000  # type: ignore[call-overload]
                    await asyncio.sleep(wait * (1 + random.random() * 0.5))
                    continue
                outcome.errors[code] = outcome.errors.get(code, 0) + 1
                return None
            outcome.latencies.append(time.monotonic() - started)
            return answer


def _context(ca: str, cert: str, key: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
    context.load_cert_chain(cert, key)
    return context


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(value) for value in fields[11:13]) / os.sysconf("SC_CLK_TCK")


class PhaseCpu:
    """CPU each watched process (and this driver) spends during one phase."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = {"driver": os.getpid(), **pids}
        self.started = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self.wall = time.monotonic()

    def seconds(self) -> dict[str, float]:
        """CPU seconds each watched process spent since the phase began."""
        return {n: cpu_seconds(pid) - self.started[n] for n, pid in self.pids.items()}

    def result(self) -> dict[str, float]:
        wall = time.monotonic() - self.wall
        used = self.seconds()
        return {f"{name}_cores": round(seconds / wall, 3) for name, seconds in used.items()}


def percentiles(seconds: list[float]) -> dict[str, float]:
    """p50, p99, max and mean of *seconds*, in milliseconds; empty for no samples."""
    if not seconds:
        return {}
    ordered = sorted(seconds)
    last = len(ordered) - 1
    return {
        "p50_ms": round(ordered[last // 2] * 1000, 2),
        "p99_ms": round(ordered[round(last * 0.99)] * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 2),
    }


def summary(outcome: Outcome, elapsed: float) -> dict[str, Any]:
    return {
        "answered": len(outcome.latencies),
        "lost": outcome.lost,
        "errors": outcome.errors,
        "retries": outcome.retries,
        "seconds": round(elapsed, 3),
        **percentiles(outcome.latencies),
    }


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    prefix = spec["prefix"]
    devices = [Device(device_id, prefix) for device_id in spec["devices"]]
    credentials = Path(spec["credentials"])
    subscribed = [asyncio.Event() for _ in devices]
    started = time.monotonic()
    semaphore = asyncio.Semaphore(200)

    async def connect(index: int, device: Device) -> None:
        context = _context(
            spec["ca"],
            str(credentials / f"{device.device_id}.pem"),
            str(credentials / f"{device.device_id}.key"),
        )
        async with semaphore:
            await device.connect(spec["host"], spec["port"], context, subscribed[index])
            await asyncio.wait_for(subscribed[index].wait(), 30)

    await asyncio.gather(*(connect(i, d) for i, d in enumerate(devices)))
    result: dict[str, Any] = {"connect_seconds": round(time.monotonic() - started, 2)}
    # Ten thousand sessions are a large, long-lived heap: without this, full collections
    # pause the driver for hundreds of milliseconds and the pauses show up as latency.
    gc.collect()
    gc.freeze()
    lag = asyncio.get_running_loop().create_task(_loop_lag(result))

    watched: dict[str, int] = spec.get("watch", {})
    if spec.get("enroll", True):
        outcome = Outcome()
        started = time.monotonic()
        cpu = PhaseCpu(watched)
        await asyncio.gather(*(d.request("enroll", _enroll_body(d), outcome) for d in devices))
        result["enroll_storm"] = summary(outcome, time.monotonic() - started) | cpu.result()

    interval, duration = spec["interval"], spec["duration"]
    outcome = Outcome()

    async def beat(device: Device) -> None:
        await asyncio.sleep(random.random() * interval)
        end = time.monotonic() + duration
        pending: list[asyncio.Task[protocol.Envelope | None]] = []
        while time.monotonic() < end:
            device.seq += 1
            body: dict[str, object] = {"seq": device.seq, "uptime": device.seq, "boot_count": 1}
            pending.append(asyncio.create_task(device.request("heartbeat", body, outcome)))
            await asyncio.sleep(interval)
        await asyncio.gather(*pending)

    started = time.monotonic()
    cpu = PhaseCpu(watched)
    await asyncio.gather(*(beat(d) for d in devices))
    result["heartbeats"] = summary(outcome, time.monotonic() - started) | cpu.result()
    result["heartbeats"]["per_second"] = round(len(outcome.latencies) / max(duration, 1e-9), 1)
    lag.cancel()
    for device in devices:
        if device.writer is not None:
            device.writer.close()
    return result


async def _loop_lag(result: dict[str, Any]) -> None:
    """How late this driver's own event loop wakes up: its share of any latency measured."""
    lags: list[float] = []
    result["driver_loop_lag_ms"] = lags
    try:
        while True:
            before = time.monotonic()
            await asyncio.sleep(0.01)
            lags.append(time.monotonic() - before - 0.01)
    except asyncio.CancelledError:
        ordered = sorted(lags)
        if ordered:
            last = len(ordered) - 1
            result["driver_loop_lag_ms"] = {
                "p50": round(ordered[last // 2] * 1000, 2),
                "p99": round(ordered[round(last * 0.99)] * 1000, 2),
                "max": round(ordered[-1] * 1000, 2),
            }
        raise


def _enroll_body(device: Device) -> dict[str, object]:
    return {
        "device_id": device.device_id,
        "hwmodel": "load-board",
        "swname": "load-fw",
        "swversion": "1.0.0",
        "rot": "software",
        "boot_count": 1,
    }


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    print(json.dumps(asyncio.run(run(spec))), flush=True)


if __name__ == "__main__":
    main()
