"""Publish time as one model's repository grows from 1 to 10,000 targets, and what a device reads.

At each size the repository is filled to that many targets of one hardware
model (through the same hashed-bin layout code a publish uses, in batches),
then a few real publishes are timed: verify the image, write it, sign the
model role and one bin, the snapshot and the timestamp, fsync each file. The
anchor, in the same run, is python-tuf's Metadata API with the naive layout:
one flat targets role holding every target, re-signed and written (with the
snapshot and timestamp) for each publish. Also reported: the metadata bytes a
device of that model downloads to reach its current image (root, timestamp,
snapshot, targets, model role, one bin), and the same for one model of a
fleet of 20 models with 100 targets each. Run from the repository root::

    .venv/bin/python -m bench.bench_publish [--json] [--sizes 1,10,100,1000,10000] [--dir /dev/shm]

Medians of the timed publishes, in milliseconds. Nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import Metadata, MetaFile, Snapshot, TargetFile, Targets, Timestamp
from tuf.api.serialization.json import JSONSerializer

from device_runtime.image_signer import sign_image
from device_runtime.ports.cpython.atomic_file import write_atomic
from update_service import key_ceremony, release_publisher, root_metadata
from update_service.hashed_bins import add_targets, model_role
from update_service.release_store import ReleaseStore
from update_service.signing_keys import generate_signer

SIZES = (1, 10, 100, 1000, 10_000)
PUBLISHES = 9
BATCH = 500
MODEL = "bench-board"
COMPACT = JSONSerializer(compact=True)


def _repository(state: Path, models: list[str]) -> tuple[ReleaseStore, dict[str, Any]]:
    state.mkdir(mode=0o700, parents=True)
    store = ReleaseStore(state)
    root_keys = [generate_signer() for _ in range(3)]
    md = key_ceremony.init_repository(store, root_keys=[k.public_key for k in root_keys],
                                      threshold=2)  # fmt: skip
    for signer in root_keys[:2]:
        root_metadata.sign_root(md, signer)
    key_ceremony.import_root(store, md)
    image_keys = {}
    for model in models:
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        release_publisher.add_hardware(store, model, [release_publisher.image_key_pem(pem)])
        image_keys[model] = key
    return store, image_keys


def _synthetic(model: str, n: int) -> TargetFile:
    """A target as a publish writes it (same fields and sizes), without its file."""
    digest = hashlib.sha256(b"%d" % n).hexdigest()
    target = TargetFile(4096, {"sha256": digest}, f"{model}/{model}-0.{n // 1000}.{n % 1000}.img")
    version = f"0.{n // 1000}.{n % 1000}"
    target.unrecognized_fields["custom"] = {"hwmodel": model, "kind": "image",
        "version": version, "security_counter": 0, "image_digest": digest}  # fmt: skip
    return target


def _first_release(store: ReleaseStore, model: str, key: ec.EllipticCurvePrivateKey) -> None:
    image = sign_image(b"first release " * 64, key=key, version="0.0.1", security_counter=0)
    release_publisher.publish(store, image, model=model)


def _fill(store: ReleaseStore, model: str, start: int, stop: int) -> None:
    """Targets *start*..*stop* of *model*, after its first release (which set its pointer)."""
    keys = release_publisher.release_keys(store)
    for first in range(start, stop, BATCH):
        with store.writer() as repo:
            batch = [_synthetic(model, n) for n in range(first, min(stop, first + BATCH))]
            pointer = repo.targets(model_role(model)).targets[f"{model}/current.json"]
            add_targets(repo, model, batch, pointer=pointer, keys=keys)
            repo.do_snapshot()
            repo.do_timestamp()


def _publish_ms(store: ReleaseStore, key: ec.EllipticCurvePrivateKey, serial: int) -> list[float]:
    times = []
    for n in range(PUBLISHES):
        image = sign_image(b"firmware %d %d " % (serial, n) * 64, key=key,
                           version=f"9.{serial}.{n}", security_counter=1)  # fmt: skip
        start = time.perf_counter()
        release_publisher.publish(store, image, model=MODEL)
        times.append((time.perf_counter() - start) * 1000)
    return times


def device_bytes(store: ReleaseStore, model: str) -> dict[str, int]:
    """Sizes of the metadata files a device of *model* downloads to reach its current image."""
    sizes = {
        name: path.stat().st_size
        for name, path in release_publisher.device_download(store.reader(), model).items()
    }
    sizes["total"] = sum(sizes.values())
    return sizes


class FlatAnchor:
    """python-tuf's Metadata API, naive layout: one targets role with every target."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.signers = {role: CryptoSigner.generate_ecdsa() for role in
                        ("targets", "snapshot", "timestamp")}  # fmt: skip
        expires = datetime.now(UTC).replace(microsecond=0) + timedelta(days=7)
        self.targets = Metadata(Targets(expires=expires))
        self.snapshot = Metadata(Snapshot(expires=expires))
        self.timestamp = Metadata(Timestamp(expires=expires))

    def fill(self, start: int, stop: int) -> None:
        for n in range(start, stop):
            target = _synthetic(MODEL, n)
            self.targets.signed.targets[target.path] = target

    def publish(self, n: int) -> None:
        target = _synthetic("flat", n)
        self.targets.signed.targets[target.path] = target
        self._write("targets", self.targets)
        self.snapshot.signed.meta["targets.json"] = MetaFile(self.targets.signed.version)
        self._write("snapshot", self.snapshot)
        self.timestamp.signed.snapshot_meta = MetaFile(self.snapshot.signed.version)
        self._write("timestamp", self.timestamp)

    def _write(self, role: str, md: Metadata[Any]) -> None:
        md.signed.version += 1
        md.sign(self.signers[role])
        name = "timestamp.json" if role == "timestamp" else f"{md.signed.version}.{role}.json"
        write_atomic(self.directory / name, md.to_bytes(COMPACT), mode=0o644)

    def publish_ms(self, serial: int) -> list[float]:
        times = []
        for n in range(PUBLISHES):
            start = time.perf_counter()
            self.publish(serial * 1000 + n)
            times.append((time.perf_counter() - start) * 1000)
        return times


def run(sizes: tuple[int, ...], directory: str | None = None) -> dict[str, Any]:
    rows = []
    with tempfile.TemporaryDirectory(dir=directory) as scratch:
        store, keys = _repository(Path(scratch) / "state", [MODEL])
        anchor = FlatAnchor(Path(scratch) / "flat")
        anchor.directory.mkdir()
        _first_release(store, MODEL, keys[MODEL])
        filled = 1
        for serial, size in enumerate(sizes):
            _fill(store, MODEL, filled, size)
            anchor.fill(filled, size)
            filled = size
            ours = statistics.median(_publish_ms(store, keys[MODEL], serial))
            flat = statistics.median(anchor.publish_ms(serial))
            bins = store.reader().bins(model_role(MODEL))
            rows.append({
                "targets": size,
                "bins": 0 if bins is None else bins.number_of_bins,
                "publish_ms": round(ours, 2),
                "flat_anchor_ms": round(flat, 2),
                "ratio_anchor_over_ours": round(flat / ours, 2),
                "device_bytes": device_bytes(store, MODEL),
            })  # fmt: skip
        models = [f"board-{m:02d}" for m in range(20)]
        fleet, fleet_keys = _repository(Path(scratch) / "fleet", models)
        for model in models:
            _first_release(fleet, model, fleet_keys[model])
            _fill(fleet, model, 1, 100)
        fleet_bytes = device_bytes(fleet, "board-07")
    return {"publishes_per_size": PUBLISHES, "rows": rows, "fleet_20x100_device_bytes": fleet_bytes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument(
        "--dir", help="Where the repositories go (default: the temporary directory); a tmpfs"
        " such as /dev/shm takes fsync out and leaves the CPU cost",
    )  # fmt: skip
    args = parser.parse_args()
    result = run(tuple(int(s) for s in args.sizes.split(",")), args.dir)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print("targets  bins  publish ms  flat anchor ms  anchor/ours  device bytes")
    for row in result["rows"]:
        print(f"{row['targets']:>7}  {row['bins']:>4}  {row['publish_ms']:>10}"
              f"  {row['flat_anchor_ms']:>14}  {row['ratio_anchor_over_ours']:>11}"
              f"  {row['device_bytes']['total']:>12}")  # fmt: skip
    print("20 models x 100 targets, one device:", result["fleet_20x100_device_bytes"])


if __name__ == "__main__":
    main()
