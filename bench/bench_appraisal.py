"""Appraisal throughput of DICE evidence, anchored to OpenSSL's bare ES256 verify.

One run, same process: (a) ``attestation_server.appraisal.appraise`` over one
DICE device's evidence (decode, chain, three signatures' worth of checks,
claims, endorsements, history), and (b) a raw ``cryptography`` ECDSA P-256
verify loop. A DICE appraisal checks three signatures: manufacturer CA over
the DeviceID certificate, DeviceID key over the Alias certificate, Alias key
over the token. The first two are over immutable certificate bytes and are
cached per certificate pair, so a device re-attesting pays for the token
signature only; the ``cold`` row clears those caches before every appraisal to
show the full cost. Ratios are given per appraisal and per signature verified.

    .venv/bin/python -m bench.bench_appraisal [--repeats 7] [--count 300] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from attestation_server import appraisal, evidence  # noqa: E402
from attestation_server.attestation_policy import Policy  # noqa: E402
from bench.bench_p256 import _rates  # noqa: E402
from tests.attestation_server import evidence_tokens as tokens  # noqa: E402

VERIFIES_PER_DICE_APPRAISAL = 3


def _clear_caches() -> None:
    for cached in (
        evidence.certificate,
        appraisal._issued_by,
        appraisal._p256,
        appraisal._tcb_info,
        appraisal._validity,
    ):
        cached.cache_clear()


def bench(repeats: int, count: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        maker = tokens.manufacturer(root / "maker")
        device = tokens.dice_device(maker, root / "dice")
    token = tokens.token(device)
    arguments = {
        "token": token,
        "quote": None,
        "quote_signature": None,
        "challenge": tokens.challenge(),
        "device": device.proven(),
        "manufacturer_cas": [maker.certificate],
        "endorsements": tokens.endorsements(),
        "policy": Policy(),
        "history": tokens.FIRST_ATTESTATION,
        "now": datetime.now(UTC),
    }

    def appraise() -> None:
        # Every real token is new (its nonce is): its decoding is never found in the cache.
        evidence._parsed_structure.cache_clear()
        result = appraisal.appraise(**arguments)  # type: ignore[arg-type]
        assert result.status == "affirming", result.reasons

    def appraise_cold() -> None:
        _clear_caches()
        appraise()

    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key()
    message = b"x" * 400
    signature = key.sign(message, ec.ECDSA(hashes.SHA256()))
    algorithm = ec.ECDSA(hashes.SHA256())
    raw = statistics.median(
        _rates(lambda: public.verify(signature, message, algorithm), repeats, count)
    )
    warm = statistics.median(_rates(appraise, repeats, count))
    cold = statistics.median(_rates(appraise_cold, repeats, max(count // 3, 1)))
    return {
        "raw_verify_per_s": raw,
        "appraisal_per_s": warm,
        "appraisal_cold_per_s": cold,
        "ratio_per_appraisal": warm / raw,
        "ratio_per_appraisal_cold": cold / raw,
        "ratio_per_verification_cold": cold * VERIFIES_PER_DICE_APPRAISAL / raw,
        "token_bytes": float(len(token)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--count", type=int, default=300, help="operations per timed batch")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    report = bench(args.repeats, args.count)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"median of {args.repeats} repeats; DICE token of {report['token_bytes']:.0f} bytes")
    for name in ("raw_verify_per_s", "appraisal_per_s", "appraisal_cold_per_s"):
        rate = report[name]
        print(f"{name:<24}{rate:>10.0f}/s{1000 / rate:>10.3f} ms")
    for name in ("ratio_per_appraisal", "ratio_per_appraisal_cold", "ratio_per_verification_cold"):
        print(f"{name:<28}{report[name]:.2f}")


if __name__ == "__main__":
    main()
