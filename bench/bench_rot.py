"""Cost of the roots of trust (software, DICE, TPM), each beside its anchor in the same run.

Run from the repository root::

    .venv/bin/python -m bench.bench_rot [--runs N] [--handshakes N] [--heap 64K] [--json]

What it times, every figure the median (and p90) of ``--runs`` single
operations after a warm-up, each section with its anchor measured in the same
process and the same run:

1. ES256 sign with the DeviceID key: software and DICE backends on CPython
   (through the crypto port: OpenSSL) and under the MicroPython unix port with
   a capped heap (the pure-Python signer; one ``micropython`` process per
   section, loading the mpy-cross bundle as a board does), and the TPM
   backend on swtpm over its direct TCTI (and, for comparison, through
   tpm2-abrmd). Anchor: ``cryptography`` raw ECDSA P-256 sign with a loaded key.
2. DICE boot (UDS -> DeviceID, CDI, Alias, sealing and counter keys), with and
   without working out the two public keys; anchor: the same five HKDFs on the
   stdlib's C HMAC and two ``cryptography`` key derivations. CSR per backend;
   anchor: ``cryptography``'s CSR builder with a loaded key.
3. seal and unseal of a 32-byte secret per backend; counter increment per
   backend (file-backed: a MAC'd record written atomically with fsync; TPM:
   TPM2_NV_Increment and a read back). Anchor for the file-backed counter:
   write a 32-byte temporary file, fsync it, ``os.replace`` it.
4. mutual TLS to a real Mosquitto (the fleet CA, the fleet broker policy):
   ``--handshakes`` sessions, each TCP connect + full TLS handshake + MQTT
   CONNECT/CONNACK, from a child process (``bench/rot_handshake.py``) with a
   software key file (anchor) and then with the TPM-held DeviceID key through
   OpenSSL's tpm2 provider and tpm2-abrmd.

Every process it starts (swtpm, dbus-daemon, tpm2-abrmd, mosquitto, the
children) is ended before it returns, also on failure. Nothing asserts on time.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from functools import partial
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from device_runtime.core.errors import SevenfoldError
from device_runtime.ports.cpython import crypto, tpm_tls
from device_runtime.ports.cpython.storage import DirectoryStore
from device_runtime.rot import dice
from device_runtime.rot.software import SoftwareRootOfTrust
from firmware_images.micropython_bundle import build, compile_module

ROOT = Path(__file__).resolve().parents[1]
MESSAGE = b"evidence the device signs: nonce, measurements, counters"
SECRET = b"k" * 32
DEVICE = "bench-rot-0001"
WARMUP = 2
FIRMWARE = crypto.sha256(b"firmware 1.0.0")

Row = dict[str, Any]
Section = dict[str, Row]

MICROPYTHON_PRELUDE = """
import gc, sys, time
from device_runtime.ports.micropython import crypto
from device_runtime.ports.micropython.storage import DirectoryStore
from device_runtime.rot import dice
base, runs = sys.argv[1], int(sys.argv[2])
message = {message!r}
def store(name):
    return DirectoryStore(directory=base + "/" + name)
uds = store("uds")
if uds.read(dice.UDS_KEY) is None:
    dice.manufacture(uds, crypto.random_bytes)
measurement = crypto.sha256(b"firmware 1.0.0")
def boot():
    return dice.DiceRootOfTrust.boot(
        uds_store=uds, store=store("dice"), firmware_measurement=measurement,
        vendor="Sevenfold", model="bench", version="1.0.0", svn=1,
        random_bytes=crypto.random_bytes, sign_es256=crypto.sign_es256)
def emit(name, fn):
    for _ in range({warmup}):
        fn()
    out = []
    for _ in range(runs):
        gc.collect()
        start = time.ticks_us()
        fn()
        out.append(time.ticks_diff(time.ticks_us(), start))
    print("R", name, ",".join(str(x) for x in out))
"""
MICROPYTHON_PHASES = {
    "sign": """
from device_runtime.rot.software import SoftwareRootOfTrust
software = SoftwareRootOfTrust.open(
    store=store("software"), random_bytes=crypto.random_bytes, sign_es256=crypto.sign_es256)
emit("software_sign", lambda: software.identity_key().sign(message))
software = None
rot = boot()
emit("dice_sign", lambda: rot.identity_key().sign(message))
""",
    "boot": """
emit("dice_boot", boot)
def boot_public():
    rot = boot()
    rot.identity_key().public_key()
    rot.attestation_key().public_key()
emit("dice_boot_public", boot_public)
""",
    "csr": """
rot = boot()
emit("dice_csr", lambda: rot.csr({device!r}))
""",
    "state": """
rot = boot()
blob = rot.seal({secret!r})
emit("dice_seal", lambda: rot.seal({secret!r}))
emit("dice_unseal", lambda: rot.unseal(blob))
emit("dice_increment", lambda: rot.increment(0))
""",
}
"""One small module per phase, each run in a fresh process: a phase holds only its own code."""
MICROPYTHON_EPILOGUE = """
gc.collect()
print("FREE", gc.mem_free())
"""


# --- statistics ---------------------------------------------------------------------------


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile *q* (0..100) of *samples*."""
    ordered = sorted(samples)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def stats(samples_ms: list[float]) -> Row:
    return {
        "median_ms": statistics.median(samples_ms),
        "p90_ms": percentile(samples_ms, 90),
        "n": len(samples_ms),
    }


def timed(fn: Callable[[], object], runs: int) -> Row:
    """Milliseconds per call of *fn*, each call timed on its own after a warm-up."""
    for _ in range(WARMUP):
        fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return stats(samples)


def skipped(reason: str) -> Row:
    return {"error": reason}


# --- anchors ------------------------------------------------------------------------------


def _hkdf(secret: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 on the stdlib's HMAC (C), the anchor for the core's pure-Python HKDF."""
    prk = hmac.new(salt or bytes(32), secret, hashlib.sha256).digest()
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes((counter,)), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


def _anchor_boot(uds: bytes, public: bool) -> None:
    """The derivations DICE boot does, on C code: five HKDFs, two keys (and their points)."""
    identity = _hkdf(uds, b"", b"DICE DeviceID", 48)
    _hkdf(uds, b"", b"DICE counters", 32)
    cdi = _hkdf(uds, FIRMWARE, b"DICE CDI", 32)
    alias = _hkdf(cdi, b"", b"DICE Alias", 48)
    _hkdf(cdi, b"", b"DICE sealing", 32)
    if public:
        n = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
        for material in (identity, alias):
            key = ec.derive_private_key(
                int.from_bytes(material, "big") % (n - 1) + 1, ec.SECP256R1()
            )
            key.public_key().public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )


def _anchor_replace(path: Path) -> None:
    """A bare durable file replacement: 32 bytes to a temporary file, fsync, os.replace."""
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, SECRET)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)


def bench_anchors(runs: int, tmp: Path) -> dict[str, Section]:
    key = ec.generate_private_key(ec.SECP256R1())
    algorithm = ec.ECDSA(hashes.SHA256())
    scalar = key.private_numbers().private_value

    def derive_and_sign() -> None:
        ec.derive_private_key(scalar, ec.SECP256R1()).sign(MESSAGE, algorithm)

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, DEVICE)])
    csr_builder = x509.CertificateSigningRequestBuilder().subject_name(name)
    uds = os.urandom(32)
    counter_file = tmp / "anchor-counter"
    return {
        "sign": {
            "anchor: cryptography sign, loaded key": timed(
                lambda: key.sign(MESSAGE, algorithm), runs
            ),
            "cryptography derive_private_key + sign": timed(derive_and_sign, runs),
        },
        "boot": {
            "anchor: same derivations, stdlib HMAC": timed(lambda: _anchor_boot(uds, False), runs),
            "anchor: + 2 public keys, cryptography": timed(lambda: _anchor_boot(uds, True), runs),
        },
        "csr": {
            "anchor: cryptography CSR builder": timed(
                lambda: csr_builder.sign(key, hashes.SHA256()), runs
            ),
        },
        "counter": {
            "anchor: 32-byte file, fsync, os.replace": timed(
                lambda: _anchor_replace(counter_file), runs
            ),
        },
    }


# --- portable backends on CPython ---------------------------------------------------------


def bench_cpython(runs: int, tmp: Path) -> dict[str, Section]:
    def store(name: str) -> DirectoryStore:
        (tmp / name).mkdir(parents=True, exist_ok=True)
        return DirectoryStore(directory=tmp / name)

    uds = store("uds")
    dice.manufacture(uds, crypto.random_bytes)

    def boot() -> dice.DiceRootOfTrust:
        return dice.DiceRootOfTrust.boot(
            uds_store=uds,
            store=store("dice"),
            firmware_measurement=FIRMWARE,
            vendor="Sevenfold",
            model="bench",
            version="1.0.0",
            svn=1,
            random_bytes=crypto.random_bytes,
            sign_es256=crypto.sign_es256,
        )

    def boot_public() -> None:
        rot = boot()
        rot.identity_key().public_key()
        rot.attestation_key().public_key()

    software = SoftwareRootOfTrust.open(
        store=store("software"), random_bytes=crypto.random_bytes, sign_es256=crypto.sign_es256
    )
    rot = boot()
    out: dict[str, Section] = {"sign": {}, "boot": {}, "csr": {}, "seal": {}, "counter": {}}
    for label, backend in (("software", software), ("DICE", rot)):
        key = backend.identity_key()
        blob = backend.seal(SECRET)
        out["sign"][f"{label}, CPython (OpenSSL)"] = timed(partial(key.sign, MESSAGE), runs)
        out["csr"][f"{label}, CPython"] = timed(partial(backend.csr, DEVICE), runs)
        out["seal"][f"{label} seal, CPython"] = timed(partial(backend.seal, SECRET), runs)
        out["seal"][f"{label} unseal, CPython"] = timed(partial(backend.unseal, blob), runs)
        out["counter"][f"{label}, CPython (MAC'd record, fsync)"] = timed(
            partial(backend.increment, 0), runs
        )
    out["boot"]["DICE boot, CPython"] = timed(boot, runs)
    out["boot"]["DICE boot + 2 public keys, CPython"] = timed(boot_public, runs)
    return out


# --- MicroPython --------------------------------------------------------------------------


def _micropython() -> str | None:
    beside = Path(sys.executable).parent / "micropython"
    return str(beside) if beside.exists() else shutil.which("micropython")


MICROPYTHON_ROWS = {
    "software_sign": ("sign", "software, MicroPython {heap} (pure Python)"),
    "dice_sign": ("sign", "DICE, MicroPython {heap} (pure Python)"),
    "dice_boot": ("boot", "DICE boot, MicroPython {heap}"),
    "dice_boot_public": ("boot", "DICE boot + 2 public keys, MicroPython {heap}"),
    "dice_csr": ("csr", "DICE, MicroPython {heap}"),
    "dice_seal": ("seal", "DICE seal, MicroPython {heap}"),
    "dice_unseal": ("seal", "DICE unseal, MicroPython {heap}"),
    "dice_increment": ("counter", "DICE, MicroPython {heap} (no fsync in its store)"),
}


FALLBACK_HEAP = "96K"
"""Where a phase that ran out of the heap asked for is run again, so it still has a figure."""


def _micropython_phase(
    binary: str, heap: str, module: str, device: Path, runs: int, env: dict[str, str], tmp: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary, "-X", f"heapsize={heap}", "-m", module, str(device), str(runs)],
        capture_output=True, text=True, timeout=300, check=False, env=env, cwd=tmp,
    )  # fmt: skip


def bench_micropython(runs: int, heap: str, tmp: Path) -> tuple[dict[str, Section], dict[str, int]]:
    """One micropython process per phase, each with a fresh heap of *heap*.

    A phase that runs out of heap is reported, then run again at FALLBACK_HEAP.
    """
    out: dict[str, Section] = {}
    free: dict[str, int] = {}
    binary = _micropython()
    if binary is None:
        out["errors"] = {"MicroPython": skipped("micropython binary not found")}
        return out, free
    bundle = tmp / "mpy"
    build(root=ROOT, out=bundle)
    device = tmp / "micropython-device"
    device.mkdir()
    env = {**os.environ, "MICROPYPATH": f"{bundle}:.frozen"}
    values = {"message": MESSAGE, "secret": SECRET, "device": DEVICE, "warmup": WARMUP}
    for phase, body in MICROPYTHON_PHASES.items():
        # Compiled to bytecode as firmware ships: compiling source would take heap too.
        module = "bench_rot_" + phase
        source = tmp / (module + ".py")
        source.write_text((MICROPYTHON_PRELUDE + body + MICROPYTHON_EPILOGUE).format(**values))
        compile_module(root=tmp, source=source, out=bundle)
        for size in (heap, FALLBACK_HEAP):
            done = _micropython_phase(binary, size, module, device, runs, env, tmp)
            for line in done.stdout.splitlines():
                if line.startswith("R "):
                    _, name, column = line.split(" ")
                    section, label = MICROPYTHON_ROWS[name]
                    samples = [int(x) / 1000 for x in column.split(",")]
                    out.setdefault(section, {})[label.format(heap=size)] = stats(samples)
                elif line.startswith("FREE "):
                    free[f"{phase} at {size}"] = int(line.split(" ")[1])
            if done.returncode == 0:
                break
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:]
            out.setdefault("errors", {})[f"MicroPython {size}, {phase}"] = skipped(
                " ".join(tail) or f"exit status {done.returncode}"
            )
            if "MemoryError" not in done.stderr + done.stdout or size == FALLBACK_HEAP:
                break
    return out, free


# --- TPM ----------------------------------------------------------------------------------


def bench_tpm_direct(rot: Any, runs: int) -> dict[str, Section]:
    key = rot.identity_key()
    blob = rot.seal(SECRET)
    rot.increment(0)  # the NV index is defined on first use; time increments only
    return {
        "sign": {"TPM, swtpm direct TCTI": timed(lambda: key.sign(MESSAGE), runs)},
        "csr": {"TPM, swtpm direct TCTI": timed(lambda: rot.csr(DEVICE), runs)},
        "seal": {
            "TPM seal, swtpm direct TCTI": timed(lambda: rot.seal(SECRET), runs),
            "TPM unseal, swtpm direct TCTI": timed(lambda: rot.unseal(blob), runs),
        },
        "counter": {
            "TPM NV increment + read, swtpm direct TCTI": timed(lambda: rot.increment(0), runs)
        },
    }


def _handshakes(
    broker: Any, cert: Path, key: Path, count: int, env: dict[str, str], client_id: str
) -> dict[str, Any]:
    done = subprocess.run(
        [
            sys.executable, "-m", "bench.rot_handshake", broker.host, str(broker.port),
            str(broker.ca_path), str(cert), str(key), client_id, str(count),
        ],
        capture_output=True, text=True, timeout=300, env=env, cwd=ROOT, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise SevenfoldError(f"handshake child failed: {done.stderr.strip()[-1500:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _tls_rows(label: str, result: dict[str, Any]) -> Section:
    return {
        f"{label}: to CONNACK": stats(result["connack_ms"]),
        f"{label}: TLS handshake only": stats(result["handshake_ms"]),
        f"{label}: load key (once)": {"median_ms": result["load_key_ms"], "p90_ms": None, "n": 1},
    }


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """*values* in this process's environment for the block (GLib reads the bus address there)."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def bench_tpm(runs: int, handshakes: int, tmp: Path) -> tuple[dict[str, Section], dict[str, Any]]:
    """swtpm: the backend over its direct TCTI, then mutual TLS through tpm2-abrmd."""
    # The TSS logs every probe for a handle not yet defined as an error; the resource
    # manager's environment silences it the same way.
    os.environ.setdefault("TSS2_LOG", "all+NONE")
    from device_runtime.rot.tpm import TpmRootOfTrust
    from device_runtime.simulated_tpm import SimulatedTpm, TpmResourceManager
    from fleet_platform.broker import MosquittoBroker
    from fleet_platform.pki import CertificateAuthority

    info: dict[str, Any] = {}
    out: dict[str, Section] = {}
    with ExitStack() as stack:
        start = time.perf_counter()
        tpm = SimulatedTpm(directory=tmp / "swtpm")
        info["swtpm_manufacture_s"] = time.perf_counter() - start
        stack.callback(tpm.kill)
        tpm.start()
        start = time.perf_counter()
        rot = TpmRootOfTrust.open(tcti=tpm.tcti)
        info["tpm_first_open_s"] = time.perf_counter() - start
        try:
            out = bench_tpm_direct(rot, runs)
            csr_pem = x509.load_der_x509_csr(rot.csr(DEVICE)).public_bytes(
                serialization.Encoding.PEM
            )
            key_file = tpm_tls.write_key_file(rot, tmp)
        finally:
            rot.close()
        start = time.perf_counter()
        TpmRootOfTrust.open(tcti=tpm.tcti).close()
        info["tpm_open_s"] = time.perf_counter() - start

        authority = CertificateAuthority.create(common_name="Bench CA", directory=tmp / "ca")
        tpm_cert = tmp / "tpm-device.crt"
        tpm_cert.write_bytes(authority.sign_csr(csr_pem, required_common_name=DEVICE))
        software = authority.issue_client(common_name=DEVICE, directory=tmp / "software-device")
        broker = stack.enter_context(
            MosquittoBroker.start(directory=tmp / "broker", authority=authority)
        )
        manager = TpmResourceManager(tpm=tpm, directory=tmp / "abrmd")
        stack.callback(manager.stop)
        manager.start()
        with _environment(manager.environment()):
            rot = TpmRootOfTrust.open(tcti=manager.tcti)
            try:
                key = rot.identity_key()
                out["sign"]["TPM, through tpm2-abrmd"] = timed(lambda: key.sign(MESSAGE), runs)
            finally:
                rot.close()
        plain = {k: v for k, v in os.environ.items() if k not in ("OPENSSL_CONF",)}
        anchor = _handshakes(
            broker, software.cert_path, software.key_path, handshakes, plain, DEVICE
        )
        tpm_env = {
            **plain,
            **manager.environment(),
            **tpm_tls.environment(tcti=manager.tcti, directory=tmp),
        }
        held = _handshakes(broker, tpm_cert, key_file, handshakes, tpm_env, DEVICE)
        info["tls_version"] = {"anchor": anchor["tls_version"], "tpm": held["tls_version"]}
        out["tls"] = {
            **_tls_rows("anchor: software key file", anchor),
            **_tls_rows("TPM key (tpm2 provider, abrmd)", held),
        }
    return out, info


# --- report -------------------------------------------------------------------------------

SECTIONS = {
    "sign": "ES256 sign (DeviceID key)",
    "boot": "DICE boot: UDS -> DeviceID, CDI, Alias",
    "csr": "CSR (PKCS#10, signed by the DeviceID key)",
    "seal": "seal / unseal, 32-byte secret",
    "counter": "counter increment",
    "tls": "mTLS session to Mosquitto (connect + handshake + CONNACK)",
    "errors": "did not run",
}


def anchor_of(section: str, name: str) -> str | None:
    """The row *name* of *section* is compared with (None: no ratio for it)."""
    if name.startswith("anchor") or name.endswith("(once)"):
        return None
    if section == "sign":
        return "anchor: cryptography sign, loaded key"
    if section == "boot":
        if "public keys" in name:
            return "anchor: + 2 public keys, cryptography"
        return "anchor: same derivations, stdlib HMAC"
    if section == "csr":
        return "anchor: cryptography CSR builder"
    if section == "counter":
        return "anchor: 32-byte file, fsync, os.replace"
    if section == "seal":
        # No outside anchor: the TPM and MicroPython against the CPython software backend.
        return "software unseal, CPython" if " unseal" in name else "software seal, CPython"
    if section == "tls":
        if "handshake only" in name:
            return "anchor: software key file: TLS handshake only"
        return "anchor: software key file: to CONNACK"
    return None


def merge(into: dict[str, Section], more: dict[str, Section]) -> None:
    for section, rows in more.items():
        into.setdefault(section, {}).update(rows)


def ratio(results: dict[str, Section], section: str, name: str) -> float | None:
    """Median of row *name* over its anchor's median, when both ran."""
    reference = anchor_of(section, name)
    rows = results.get(section, {})
    if reference is None or reference == name or reference not in rows:
        return None
    top, bottom = rows[name].get("median_ms"), rows[reference].get("median_ms")
    return None if top is None or not bottom else float(top / bottom)


def ratios(results: dict[str, Section]) -> dict[str, float]:
    out: dict[str, float] = {}
    for section, rows in results.items():
        for name in rows:
            value = ratio(results, section, name)
            if value is not None:
                out[f"{section}: {name} / {anchor_of(section, name)}"] = value
    return out


def print_report(report: dict[str, Any]) -> None:
    results: dict[str, Section] = report["results"]
    print(f"medians (p90) of {report['runs']} operations; {report['handshakes']} TLS sessions")
    for section, title in SECTIONS.items():
        rows = results.get(section)
        if not rows:
            continue
        print(f"\n{title}")
        for name, row in rows.items():
            if "error" in row:
                print(f"  {name:<56} {row['error']}")
                continue
            p90 = "" if row["p90_ms"] is None else f"({row['p90_ms']:.3f})"
            value = ratio(results, section, name)
            times = "" if value is None else f"x{value:.2f}"
            print(f"  {name:<56}{row['median_ms']:>10.3f} ms {p90:>12} {times:>9}")
    print()
    for name, value in report["info"].items():
        print(f"{name}: {value}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50, help="timed operations per figure")
    parser.add_argument("--handshakes", type=int, default=30, help="TLS sessions per key")
    parser.add_argument("--heap", default="64K", help="MicroPython heap size (-X heapsize)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    started = time.perf_counter()
    results: dict[str, Section] = {}
    info: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-rot-") as name:
        tmp = Path(name)
        merge(results, bench_anchors(args.runs, tmp))
        merge(results, bench_cpython(args.runs, tmp / "cpython"))
        micro, free = bench_micropython(args.runs, args.heap, tmp / "micropython")
        merge(results, micro)
        info["micropython_heap_free_after_phase"] = free
        try:
            tpm, tpm_info = bench_tpm(args.runs, args.handshakes, tmp / "tpm")
        except (SevenfoldError, OSError) as exc:
            results.setdefault("errors", {})["TPM and TLS"] = skipped(str(exc))
        else:
            merge(results, tpm)
            info.update(tpm_info)
    info["wall_s"] = time.perf_counter() - started
    report = {
        "runs": args.runs,
        "handshakes": args.handshakes,
        "micropython_heap": args.heap,
        "results": results,
        "ratios": ratios(results),
        "info": info,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print_report(report)


if __name__ == "__main__":
    main()
