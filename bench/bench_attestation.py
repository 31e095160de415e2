"""A thousand provisioned devices attesting at once, end to end, beside OpenSSL's ES256 verify.

Starts a real ``sevenfold server`` process (managed Mosquitto with its
recovery listener, SQLite or PostgreSQL, ``--gateway-processes``) that trusts
a manufacturer CA made here. Provisions every device as the factory station
does, without a console: a root of trust in the device's own directory (DICE
by default), its CSR, the DeviceID certificate from the manufacturer CA
(DICE: ``sign_dice_device_id_csr``), registered through
``POST /api/v1/provisioned-devices`` with the factory token; the operator
endorses the image and the configuration. That is setup and is not measured.

Then, from a separate driver process (:mod:`bench.attestation_storm_driver`),
every device on its own mTLS session to the recovery listener (its DeviceID
certificate) asks for a challenge at the same moment, builds its EAT with the
real device code once its nonce arrives, sends it and waits for its verdict.
Each of ``--repeats`` runs is a reboot of the whole fleet (boot count + 1, a
new boot seed); the first run is each device's first attestation (nothing
cached, every pass a new broker grant), later ones re-attestations.

Reported per run and as medians: attestations per second (wall, from the
first challenge to the last verdict), latency p50/p99 from challenge sent to
verdict received and from evidence sent to verdict received, server CPU
seconds per attestation (the server process and its gateway processes, from
``/proc``; Mosquitto and the driver apart), the device CPU per token, and
every verdict (none may be contraindicated, or the benchmark fails). Anchor,
same run: a raw ``cryptography`` ECDSA P-256 verify loop; the ratios are
attestations/s over verifies/s and the server's CPU per attestation in
verifies' worth. All processes share this machine's cores.

    .venv/bin/python -m bench.bench_attestation [--devices 1000] [--repeats 3]
        [--kind dice|software] [--database sqlite|postgresql]
        [--gateway-processes N] [--json]
"""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from bench.bench_fleet_load import (
    _fresh_postgresql,
    _mosquitto_child,
    _wait_for_server,
    children,
    stop_server,
)
from bench.bench_p256 import _rates
from device_runtime.ports.cpython.atomic_file import write_atomic
from device_runtime.simulated_board import (
    DBGSTAT_DISABLED_PERMANENTLY,
    DEVICEID_CERT_FILE,
    OEMID,
    configuration_digest,
)
from device_runtime.simulator import SWNAME, BootedImage, csr_pem, open_root_of_trust
from firmware_images.build import checked, release_image
from firmware_images.sensor_app.releases import release
from fleet_platform import api_tokens
from fleet_platform.pki import CertificateAuthority
from sevenfold.factory_station import device_id_for, init_ca

HWMODEL = "bench-board"


def _sample_image() -> BootedImage:
    """What every bench board's first stage measured: the sample app's 1.0.0 image."""
    key = ec.generate_private_key(ec.SECP256R1())
    verified = checked(release_image(release("1.0.0"), key), key)
    return BootedImage(verified.version, verified.security_counter, verified.image_hash)


IMAGE = _sample_image()
STATION = "bench"
KINDS = ("dice", "software")
PROVISIONING_THREADS = 4
DRIVER_TIMEOUT_S = 600
ANCHOR_COUNT = 2000
PASSING = ("affirming", "warning")


def provision(
    *,
    authority: CertificateAuthority,
    api: httpx.Client,
    kind: str,
    count: int,
    directory: Path,
    progress: Callable[[int], None],
) -> tuple[list[dict[str, str]], dict[str, Any]]:
    """Every device through the factory route: the registrations and the broker link."""
    done = 0
    lock = threading.Lock()

    def one(number: int) -> tuple[dict[str, str], dict[str, Any]]:
        nonlocal done
        device_id = device_id_for(HWMODEL, f"{number:05d}")
        home = directory / device_id
        rot = open_root_of_trust(kind=kind, directory=home, hwmodel=HWMODEL, image=IMAGE)
        csr_der = rot.csr(device_id)
        request = csr_pem(csr_der)
        certificate = (
            authority.sign_dice_device_id_csr(request, required_common_name=device_id)
            if kind == "dice"
            else authority.sign_csr(request, required_common_name=device_id)
        )
        answer = api.post(
            "/api/v1/provisioned-devices",
            json={
                "device_id": device_id,
                "hwmodel": HWMODEL,
                "rot_kind": kind,
                "csr": base64.b64encode(csr_der).decode(),
                "manufacturer_certificate": certificate.decode(),
                "station": STATION,
            },
        )
        if answer.status_code != 200:
            raise SystemExit(f"registering {device_id}: {answer.status_code} {answer.text}")
        write_atomic(home / DEVICEID_CERT_FILE, certificate, mode=0o600)
        der = x509.load_pem_x509_certificate(certificate).public_bytes(serialization.Encoding.DER)
        with lock:
            done += 1
            progress(done)
        entry = {"device_id": device_id, "directory": str(home), "deviceid_certificate": der.hex()}
        return entry, answer.json()

    with ThreadPoolExecutor(PROVISIONING_THREADS) as pool:
        registered = list(pool.map(one, range(count)))
    return [entry for entry, _ in registered], registered[0][1]


def _operate(api: httpx.Client, kind: str, config_digest: bytes) -> None:
    """What the operator does first: endorse the image and the configuration, and for
    software roots of trust admit them in the default group (development lines only)."""
    for component, digest in (
        ("image", IMAGE.image_hash),
        ("config", config_digest),
    ):
        api.post(
            "/api/v1/endorsements",
            json={"hwmodel": HWMODEL, "component": component, "digest": digest.hex()},
        ).raise_for_status()
    if kind == "software":
        api.put(
            "/api/v1/policies/default", json={"allowed_roots": ["tpm", "dice", "software"]}
        ).raise_for_status()


def anchor(repeats: int) -> dict[str, float]:
    """OpenSSL's bare ES256 verify, through ``cryptography``: the floor of one appraisal."""
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key()
    message = b"x" * 400
    algorithm = ec.ECDSA(hashes.SHA256())
    signature = key.sign(message, algorithm)
    rate = statistics.median(
        _rates(lambda: public.verify(signature, message, algorithm), repeats, ANCHOR_COUNT)
    )
    return {"raw_verify_per_s": round(rate, 1), "verify_ms": round(1000 / rate, 4)}


def _server_command(
    args: argparse.Namespace, state: Path, maker: Path, url: str | None
) -> list[str]:
    command = [
        sys.executable, "-m", "sevenfold.cli", "server", "--state", str(state),
        "--http-port", "0", "--broker-port", "0", "--broker-recovery-port", "0",
        "--manufacturer-ca", str(maker), "--gateway-processes", str(args.gateway_processes),
    ]  # fmt: skip
    return command + (["--database", url] if url else [])


def _gateway_children(server_pid: int, broker_pid: int | None, expected: int) -> list[int]:
    """The server's gateway processes (every child but Mosquitto), once all are up."""
    deadline = time.monotonic() + 30
    while True:
        found = [pid for pid in children(server_pid) if pid != broker_pid]
        if len(found) >= expected or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def _run_driver(spec: dict[str, Any], tmp: Path) -> dict[str, Any]:
    path = tmp / "storm.json"
    path.write_text(json.dumps(spec))
    done = subprocess.run(
        [sys.executable, "-m", "bench.attestation_storm_driver", str(path)],
        stdout=subprocess.PIPE, text=True, check=False, timeout=DRIVER_TIMEOUT_S,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"the driver failed ({done.returncode}); its output is above")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _judged(run: dict[str, Any], devices: int, gateways: int) -> dict[str, Any]:
    """One run's figures; the server's CPU is its own and its gateway processes'."""
    cpu = run["cpu_s"]
    server = cpu["server"] + sum(cpu.get(f"gateway-{n}", 0.0) for n in range(1, gateways))
    attested = max(run["attested"], 1)
    run["server_cpu_s"] = round(server, 3)
    run["server_cpu_ms_per_attestation"] = round(server / attested * 1000, 3)
    run["broker_cpu_ms_per_attestation"] = round(cpu.get("broker", 0.0) / attested * 1000, 3)
    run["driver_cpu_ms_per_attestation"] = round(cpu["driver"] / attested * 1000, 3)
    refused = {v: n for v, n in run["verdicts"].items() if v not in PASSING}
    if refused or run["attested"] != devices:
        raise SystemExit(
            f"run {run['boot']}: {run['attested']} of {devices} devices passed; {refused},"
            f" errors {run['errors']}, lost {run['lost']}"
        )
    return run


def bench(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    maker = init_ca(tmp / "maker")
    state = tmp / "state"
    url = _fresh_postgresql(tmp) if args.database == "postgresql" else None
    with (tmp / "server.log").open("w") as server_log:
        server = subprocess.Popen(
            _server_command(args, state, maker.cert_path, url),
            stdout=subprocess.DEVNULL, stderr=server_log,
        )  # fmt: skip
    try:
        info = _wait_for_server(state, server)
        assert info.broker_host and info.ca_path
        broker_pid = _mosquitto_child(server.pid)
        gateways = _gateway_children(server.pid, broker_pid, args.gateway_processes - 1)
        factory = {"Authorization": f"Bearer {api_tokens.read(state, name=api_tokens.FACTORY)}"}
        operator = {"Authorization": f"Bearer {api_tokens.read(state)}"}
        started = time.monotonic()
        with httpx.Client(base_url=info.http_url, headers=factory, timeout=60) as api:
            devices, link = provision(
                authority=maker, api=api, kind=args.kind, count=args.devices,
                directory=tmp / "devices", progress=_progress(args.devices),
            )  # fmt: skip
        provisioned_s = time.monotonic() - started
        record = {
            "broker_host": link["broker_host"], "broker_port": link["broker_port"],
            "recovery_port": link["broker_recovery_port"],
        }  # fmt: skip
        config_digest = configuration_digest(record, info.prefix)
        with httpx.Client(base_url=info.http_url, headers=operator, timeout=60) as api:
            _operate(api, args.kind, config_digest)
        watch = {"server": server.pid, **({"broker": broker_pid} if broker_pid else {})}
        watch.update({f"gateway-{n}": pid for n, pid in enumerate(gateways, 1)})
        spec = {
            "host": info.broker_host, "port": link["broker_recovery_port"], "ca": info.ca_path,
            "prefix": info.prefix, "kind": args.kind, "hwmodel": HWMODEL,
            "swversion": IMAGE.version, "swname": SWNAME,
            "security_version": IMAGE.security_counter,
            "oemid": OEMID.hex(), "dbgstat": DBGSTAT_DISABLED_PERMANENTLY,
            "image_digest": IMAGE.image_hash.hex(),
            "config_digest": config_digest.hex(), "certificate_file": DEVICEID_CERT_FILE,
            "devices": devices, "repeats": args.repeats, "watch": watch,
        }  # fmt: skip
        result = _run_driver(spec, tmp)
    finally:
        stop_server(server)
    runs = [_judged(run, args.devices, args.gateway_processes) for run in result["runs"]]
    reference = anchor(args.repeats)
    median = _medians(runs)
    median["ratio_attestations_to_verifies"] = round(
        median["per_second"] / reference["raw_verify_per_s"], 4
    )
    median["server_cpu_in_verifies"] = round(
        median["server_cpu_ms_per_attestation"] / reference["verify_ms"], 1
    )
    return {
        "devices": args.devices,
        "kind": args.kind,
        "database": args.database,
        "gateway_processes": args.gateway_processes,
        "provision_seconds": round(provisioned_s, 2),
        "connect_seconds": result["connect_seconds"],
        "device_boot_cpu_ms": result["boot_cpu_ms"],
        "runs": runs,
        "median": median,
        "anchor": reference,
    }


MEDIAN_OF = {
    "per_second": ("per_second",),
    "seconds": ("seconds",),
    "p50_ms": ("latency_ms", "p50_ms"),
    "p99_ms": ("latency_ms", "p99_ms"),
    "evidence_p50_ms": ("evidence_latency_ms", "p50_ms"),
    "evidence_p99_ms": ("evidence_latency_ms", "p99_ms"),
    "server_cpu_ms_per_attestation": ("server_cpu_ms_per_attestation",),
    "broker_cpu_ms_per_attestation": ("broker_cpu_ms_per_attestation",),
    "driver_cpu_ms_per_attestation": ("driver_cpu_ms_per_attestation",),
    "token_cpu_ms": ("token_cpu_ms",),
}
"""Each median's name and where it sits in a run's figures."""


def _medians(runs: list[dict[str, Any]]) -> dict[str, float]:
    def value(run: dict[str, Any], path: tuple[str, ...]) -> float:
        found: Any = run
        for key in path:
            found = found[key]
        return float(found)

    return {
        name: round(statistics.median(value(run, path) for run in runs), 3)
        for name, path in MEDIAN_OF.items()
    }


def _progress(total: int) -> Callable[[int], None]:
    step = max(total // 10, 1)

    def show(done: int) -> None:
        if done % step == 0 or done == total:
            print(f"provisioned {done}/{total}", file=sys.stderr, flush=True)

    return show


def _print(report: dict[str, Any]) -> None:
    print(
        f"{report['devices']} {report['kind']} devices, {report['database']},"
        f" {report['gateway_processes']} gateway process(es); provisioned in"
        f" {report['provision_seconds']} s, booted ({report['device_boot_cpu_ms']} ms of CPU"
        f" each) and connected in {report['connect_seconds']} s"
    )
    print("run  attest/s  p50 ms  p99 ms  ev p50  ev p99  server ms/att  broker  driver  token ms")
    for run in report["runs"]:
        latency, evidence = run["latency_ms"], run["evidence_latency_ms"]
        print(
            f"{run['boot']:>3}  {run['per_second']:>8.0f}  {latency['p50_ms']:>6.0f}"
            f"  {latency['p99_ms']:>6.0f}  {evidence['p50_ms']:>6.0f}  {evidence['p99_ms']:>6.0f}"
            f"  {run['server_cpu_ms_per_attestation']:>13.3f}"
            f"  {run['broker_cpu_ms_per_attestation']:>6.3f}"
            f"  {run['driver_cpu_ms_per_attestation']:>6.3f}  {run['token_cpu_ms']:>8.3f}"
            f"  {run['verdicts']}"
        )
    median, reference = report["median"], report["anchor"]
    print("median", json.dumps(median))
    print(
        f"anchor: raw ES256 verify {reference['raw_verify_per_s']:.0f}/s"
        f" ({reference['verify_ms']} ms); attestations/s over verifies/s"
        f" {median['ratio_attestations_to_verifies']}; one attestation costs the server"
        f" {median['server_cpu_in_verifies']} verifies' worth of CPU"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--kind", choices=KINDS, default="dice")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--gateway-processes", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="sevenfold-attest-"))
    try:
        report = bench(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print(report)


if __name__ == "__main__":
    main()
