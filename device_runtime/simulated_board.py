"""A provisioned simulated board running its agent as a process of its own.

What a board does once the factory has been through its console: read what
was installed (device id, DeviceID and fleet certificates, the broker's CA and
address), open its root of trust and measure its firmware and configuration
into it, attest through the broker's recovery listener (when the factory
installed one) to earn a fleet certificate, connect with the key its root of
trust holds, and enroll and heartbeat. A TPM board needs this process of its own: OpenSSL reads
the configuration that loads its tpm2 provider once per process
(``ports/cpython/tpm_tls.py``), so it is started with that environment.

    python -m device_runtime.simulated_board --dir D --kind tpm --hwmodel M [--beats N]

It prints one JSON line: device id, boot count, beats answered, error (or null),
and exits 0 only if every beat was answered.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import cast

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from device_runtime.console_device import BROKER_CA_FILE, ROOTS, export_credentials
from device_runtime.core import evidence
from device_runtime.core.attestor import Attestor
from device_runtime.core.console import read_installed
from device_runtime.core.errors import SevenfoldError
from device_runtime.ports.cpython.atomic_file import write_atomic
from device_runtime.ports.cpython.storage import DirectoryStore
from device_runtime.simulator import (
    SIMULATED_KINDS,
    SWNAME,
    AttestedLink,
    BrokerAddress,
    SimulatedDevice,
    firmware_measurement,
    open_root_of_trust,
    run_agent,
    tls_transport,
)

DEVICEID_CERT_FILE = "deviceid.crt"


OEMID = b"\x02\x5a\x7f"
"""The simulated boards' maker: an IEEE OUI-shaped identifier (EAT ``oemid``)."""
DBGSTAT_DISABLED_PERMANENTLY = 3
"""EAT ``dbgstat`` a simulated board reports: it has no debug port at all."""
SECURITY_VERSION = 0


@contextlib.contextmanager
def _key_file(rot: object, kind: str, directory: Path, key: str = "identity") -> Iterator[Path]:
    """Where this board's TLS library reads *key* (``identity`` or ``evidence``) from."""
    if kind == "tpm":
        from device_runtime.ports.cpython import tpm_tls
        from device_runtime.rot.tpm import TpmRootOfTrust

        assert isinstance(rot, TpmRootOfTrust)
        yield tpm_tls.write_key_file(rot, directory)  # its evidence key is the DeviceID key
        return
    from device_runtime.ports.cpython.tls_credential import key_file
    from device_runtime.rot.derived import DerivedRootOfTrust

    assert isinstance(rot, DerivedRootOfTrust)
    with key_file(rot.identity_key() if key == "identity" else rot.evidence_key()) as path:
        yield path


def configuration_digest(record: dict[str, object], prefix: str) -> bytes:
    """SHA-256 of what configures the board: where it connects and under which topics."""
    text = f"{record['broker_host']}:{record['broker_port']}:{record.get('recovery_port')}:{prefix}"
    return hashlib.sha256(text.encode()).digest()


def run_board(
    *, directory: Path, kind: str, hwmodel: str, swversion: str, beats: int, prefix: str
) -> SimulatedDevice:
    """Run the provisioned board in *directory*; the outcome is on the returned device."""
    record = read_installed(DirectoryStore(directory=directory))
    if record is None or export_credentials(directory) is None:
        raise SystemExit(f"{directory}: the board is not provisioned")
    device = SimulatedDevice(device_id=str(record["device_id"]), directory=directory)
    recovery = record.get("recovery_port")
    broker = BrokerAddress(
        host=str(record["broker_host"]),
        port=int(record["broker_port"]),  # type: ignore[call-overload]
        ca_path=directory / BROKER_CA_FILE,
        prefix=prefix,
        recovery_port=recovery if isinstance(recovery, int) else None,
    )
    image = firmware_measurement(swversion)
    try:
        # A simulated board's first stage measures the firmware it is told it runs.
        rot = (
            open_root_of_trust(kind=kind, directory=directory, hwmodel=hwmodel, swversion=swversion)
            if kind in SIMULATED_KINDS
            else ROOTS[kind](directory)
        )
        evidence.measure_boot(rot, image, configuration_digest(record, prefix))
    except SevenfoldError as exc:
        device.error = exc.explain()
        return device
    if broker.recovery_port is None:
        with _key_file(rot, kind, directory) as key_path:
            transport = tls_transport(device=device, key_path=key_path, broker=broker)
        if transport is not None:
            run_agent(device=device, rot_kind=rot.kind, transport=transport, broker=broker,
                      hwmodel=hwmodel, swversion=swversion, beats=beats)  # fmt: skip
        return device
    deviceid = x509.load_der_x509_certificate(cast(bytes, record["device-cert"]))
    deviceid_path = directory / DEVICEID_CERT_FILE
    write_atomic(deviceid_path, deviceid.public_bytes(serialization.Encoding.PEM), mode=0o600)
    attestor = Attestor(
        rot=rot,
        device_id=device.device_id,
        deviceid_certificate=deviceid.public_bytes(serialization.Encoding.DER),
        hwmodel=hwmodel,
        swname=SWNAME,
        swversion=swversion,
        security_version=SECURITY_VERSION,
        oemid=OEMID,
        dbgstat=DBGSTAT_DISABLED_PERMANENTLY,
        image_digest=image,
        config_digest=configuration_digest(record, prefix),
    )
    link = AttestedLink(
        device=device,
        broker=broker,
        deviceid_certificate=deviceid_path,
        key_files=lambda key: _key_file(rot, kind, directory, key),
    )
    run_agent(device=device, rot_kind=rot.kind, broker=broker, hwmodel=hwmodel,
              swversion=swversion, beats=beats, link=link, attestor=attestor)  # fmt: skip
    return device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--kind", choices=sorted(ROOTS), required=True)
    parser.add_argument("--hwmodel", required=True)
    parser.add_argument("--swversion", default="1.0.0")
    parser.add_argument("--beats", type=int, default=3)
    parser.add_argument("--prefix", default="sevenfold")
    args = parser.parse_args()
    device = run_board(
        directory=args.dir,
        kind=args.kind,
        hwmodel=args.hwmodel,
        swversion=args.swversion,
        beats=args.beats,
        prefix=args.prefix,
    )
    print(
        json.dumps(
            {
                "device_id": device.device_id,
                "boot_count": device.boot_count,
                "attested": device.attested,
                "beats": device.beats,
                "error": device.error,
            }
        ),
        flush=True,
    )
    sys.exit(0 if device.error is None and device.beats == args.beats else 1)


if __name__ == "__main__":
    main()
