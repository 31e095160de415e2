"""Provisioned devices attesting all at once through the broker's recovery listener.

Each simulated device opens its own root of trust from its directory (DICE:
the first stage runs from the UDS file, as at boot), presents its DeviceID
certificate on its own mTLS session to the recovery listener and speaks MQTT
3.1.1 with the packet codec the MicroPython port uses
(:class:`bench.fleet_load_driver.Device` on the attestation plane). In each
run every device reboots (boot count + 1, a new boot seed: a new
:class:`~device_runtime.core.attestor.Attestor`) and, at the same moment as
all the others, asks for a challenge, builds its evidence with the real
device code once the nonce is in, sends it and waits for the verdict. Answers
are matched by correlation id, never by topic: Mosquitto 2.0.11 delivers
answers on the recovery listener under ``recovery/`` (its bug #2244).

Run as its own process (``python -m bench.attestation_storm_driver SPEC.json``)
so that its CPU is not the server's; it prints one JSON result line. The CPU
spent building tokens is measured apart (thread CPU time around each build),
so that the device side can be told from the load generator's own overhead.
"""

from __future__ import annotations

import asyncio
import gc
import json
import ssl
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.fleet_load_driver import Device, Outcome, PhaseCpu, percentiles
from device_runtime.core.attestor import Attestor
from device_runtime.ports.cpython.tls_credential import key_file
from device_runtime.rot.derived import DerivedRootOfTrust
from device_runtime.simulator import BootedImage, open_root_of_trust

ATTESTATION_LEAVES = ("att/up", "att/down")
CONNECTING_AT_ONCE = 200
SUBSCRIBED_TIMEOUT_S = 30.0
SETTLE_S = 0.5
"""Pause between runs, so one run's tail (grant refreshes) does not land in the next."""


@dataclass(slots=True)
class Board:
    """One simulated device: its session, its root of trust and what its factory installed."""

    device: Device
    rot: DerivedRootOfTrust
    deviceid_certificate: bytes
    """DER, as the factory installed it."""


@dataclass(slots=True)
class Timings:
    """One run's per-attestation timings, seconds."""

    total: list[float]
    """From the challenge sent to the verdict received."""
    evidence: list[float]
    """From the evidence sent to the verdict received."""
    token_cpu: list[float]
    """Thread CPU building each token."""


def _open_board(spec: dict[str, Any], entry: dict[str, str]) -> tuple[Board, ssl.SSLContext]:
    """Boot: open the root of trust and work out both public keys, so that the storm's token
    times are per token (the derivation, pure Python, happens once per boot)."""
    directory = Path(entry["directory"])
    image = BootedImage(
        spec["swversion"], spec["security_version"], bytes.fromhex(spec["image_digest"])
    )
    rot = open_root_of_trust(
        kind=spec["kind"], directory=directory, hwmodel=spec["hwmodel"], image=image
    )
    rot.identity_key().public_key()
    rot.evidence_key().public_key()
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=spec["ca"])
    with key_file(rot.identity_key()) as key_path:
        context.load_cert_chain(str(directory / spec["certificate_file"]), str(key_path))
    device = Device(entry["device_id"], spec["prefix"], leaves=ATTESTATION_LEAVES)
    board = Board(device, rot, bytes.fromhex(entry["deviceid_certificate"]))
    return board, context


async def _connect_all(spec: dict[str, Any], boards: list[tuple[Board, ssl.SSLContext]]) -> None:
    semaphore = asyncio.Semaphore(CONNECTING_AT_ONCE)

    async def connect(board: Board, context: ssl.SSLContext) -> None:
        subscribed = asyncio.Event()
        async with semaphore:
            await board.device.connect(spec["host"], spec["port"], context, subscribed)
            await asyncio.wait_for(subscribed.wait(), SUBSCRIBED_TIMEOUT_S)

    await asyncio.gather(*(connect(board, context) for board, context in boards))


def _attestor(spec: dict[str, Any], board: Board) -> Attestor:
    """This boot's evidence maker: a new one per run is a reboot (a new boot seed)."""
    return Attestor(
        rot=board.rot,
        device_id=board.device.device_id,
        deviceid_certificate=board.deviceid_certificate,
        hwmodel=spec["hwmodel"],
        swname=spec["swname"],
        swversion=spec["swversion"],
        security_version=spec["security_version"],
        oemid=bytes.fromhex(spec["oemid"]),
        dbgstat=spec["dbgstat"],
        image_digest=bytes.fromhex(spec["image_digest"]),
        config_digest=bytes.fromhex(spec["config_digest"]),
    )


async def _attest(
    spec: dict[str, Any],
    board: Board,
    boot: int,
    outcomes: tuple[Outcome, Outcome],
    timings: Timings,
    verdicts: Counter[str],
) -> None:
    attestor = _attestor(spec, board)
    started = time.monotonic()
    issued = await board.device.request("challenge", {}, outcomes[0])
    if issued is None:
        verdicts["no-challenge"] += 1
        return
    cpu = time.thread_time()
    body = attestor.body(issued.body["nonce"], boot, boot)  # type: ignore[arg-type]
    timings.token_cpu.append(time.thread_time() - cpu)
    sent = time.monotonic()
    verdict = await board.device.request("evidence", body, outcomes[1])
    if verdict is None:
        verdicts["no-verdict"] += 1
        return
    done = time.monotonic()
    timings.total.append(done - started)
    timings.evidence.append(done - sent)
    status = str(verdict.body["status"])
    verdicts[status] += 1
    if status == "contraindicated":
        verdicts[f"contraindicated:{verdict.body['code']}"] += 1
    elif not isinstance(verdict.body.get("certificate"), bytes):
        verdicts["pass-without-certificate"] += 1


async def _run_once(spec: dict[str, Any], boards: list[Board], boot: int) -> dict[str, Any]:
    outcomes = (Outcome(), Outcome())
    timings = Timings([], [], [])
    verdicts: Counter[str] = Counter()
    cpu = PhaseCpu(spec.get("watch", {}))
    started = time.monotonic()
    await asyncio.gather(
        *(_attest(spec, board, boot, outcomes, timings, verdicts) for board in boards)
    )
    wall = time.monotonic() - started
    used = cpu.seconds()
    attested = len(timings.total)
    return {
        "boot": boot,
        "seconds": round(wall, 3),
        "attested": attested,
        "per_second": round(attested / wall, 1),
        "verdicts": dict(verdicts),
        "retries": outcomes[0].retries + outcomes[1].retries,
        "lost": outcomes[0].lost + outcomes[1].lost,
        "errors": {**outcomes[0].errors, **outcomes[1].errors},
        "latency_ms": percentiles(timings.total),
        "evidence_latency_ms": percentiles(timings.evidence),
        "token_cpu_ms": round(sum(timings.token_cpu) / max(len(timings.token_cpu), 1) * 1000, 3),
        "token_cpu_s": round(sum(timings.token_cpu), 3),
        "cpu_s": {name: round(seconds, 3) for name, seconds in used.items()},
    }


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    started = time.monotonic()
    boot_cpu = time.process_time()
    opened = [_open_board(spec, entry) for entry in spec["devices"]]
    boot_cpu = time.process_time() - boot_cpu
    await _connect_all(spec, opened)
    boards = [board for board, _ in opened]
    result: dict[str, Any] = {
        "connect_seconds": round(time.monotonic() - started, 2),
        "boot_cpu_ms": round(boot_cpu / max(len(opened), 1) * 1000, 3),
    }
    # As in the fleet load driver: a large long-lived heap, kept out of full collections.
    gc.collect()
    gc.freeze()
    runs = []
    for boot in range(1, spec["repeats"] + 1):
        runs.append(await _run_once(spec, boards, boot))
        print(f"run {boot}: {json.dumps(runs[-1])}", file=sys.stderr, flush=True)
        await asyncio.sleep(SETTLE_S)
    result["runs"] = runs
    for board in boards:
        if board.device.writer is not None:
            board.device.writer.close()
    return result


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    print(json.dumps(asyncio.run(run(spec))), flush=True)


if __name__ == "__main__":
    main()
