"""A provisioned simulated board running its agent as a process of its own.

What a board does once the factory has been through its console: read what
was installed (device id, fleet certificate, the broker's CA and address),
open its root of trust, connect with the key that root of trust holds, and
enroll and heartbeat. A TPM board needs this process of its own: OpenSSL reads
the configuration that loads its tpm2 provider once per process
(``ports/cpython/tpm_tls.py``), so it is started with that environment.

    python -m device_runtime.simulated_board --dir D --kind tpm --hwmodel M [--beats N]

It prints one JSON line: device id, boot count, beats answered, error (or null),
and exits 0 only if every beat was answered.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path

from device_runtime.console_device import BROKER_CA_FILE, ROOTS, export_credentials
from device_runtime.core.console import read_installed
from device_runtime.core.errors import SevenfoldError
from device_runtime.ports.cpython.storage import DirectoryStore
from device_runtime.simulator import BrokerAddress, SimulatedDevice, run_agent, tls_transport


@contextlib.contextmanager
def _key_file(rot: object, kind: str, directory: Path) -> Iterator[Path]:
    """Where this board's TLS library reads its key from."""
    if kind == "tpm":
        from device_runtime.ports.cpython import tpm_tls
        from device_runtime.rot.tpm import TpmRootOfTrust

        assert isinstance(rot, TpmRootOfTrust)
        yield tpm_tls.write_key_file(rot, directory)
        return
    from device_runtime.ports.cpython.tls_credential import identity_key_file
    from device_runtime.rot.derived import DerivedRootOfTrust

    assert isinstance(rot, DerivedRootOfTrust)
    with identity_key_file(rot) as path:
        yield path


def run_board(
    *, directory: Path, kind: str, hwmodel: str, swversion: str, beats: int, prefix: str
) -> SimulatedDevice:
    """Run the provisioned board in *directory*; the outcome is on the returned device."""
    record = read_installed(DirectoryStore(directory=directory))
    if record is None or export_credentials(directory) is None:
        raise SystemExit(f"{directory}: the board is not provisioned")
    device = SimulatedDevice(device_id=str(record["device_id"]), directory=directory)
    broker = BrokerAddress(
        host=str(record["broker_host"]),
        port=int(record["broker_port"]),  # type: ignore[call-overload]
        ca_path=directory / BROKER_CA_FILE,
        prefix=prefix,
    )
    try:
        rot = ROOTS[kind](directory)
    except SevenfoldError as exc:
        device.error = exc.explain()
        return device
    with _key_file(rot, kind, directory) as key_path:
        transport = tls_transport(device=device, key_path=key_path, broker=broker)
    if transport is not None:
        run_agent(
            device=device,
            rot_kind=rot.kind,
            transport=transport,
            broker=broker,
            hwmodel=hwmodel,
            swversion=swversion,
            beats=beats,
        )
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
                "beats": device.beats,
                "error": device.error,
            }
        ),
        flush=True,
    )
    sys.exit(0 if device.error is None and device.beats == args.beats else 1)


if __name__ == "__main__":
    main()
