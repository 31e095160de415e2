"""A device process whose broker connection is signed by its TPM (run by test_tpm_tls.py).

``python -m tests.device_runtime.rot.tpm_tls_device TCTI DIR HOST PORT CA CERT DEVICE_ID``
must be started with ``tpm_tls.environment()`` and the resource manager's
environment. It connects over mTLS with the DeviceID key inside the TPM,
publishes one message to its up topic and prints ``connected``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from device_runtime.ports.cpython import tpm_tls
from device_runtime.ports.cpython.transport import MqttTransport
from device_runtime.rot.tpm import TpmRootOfTrust


def main(tcti: str, directory: str, host: str, port: str, ca: str, cert: str, device: str) -> None:
    rot = TpmRootOfTrust.open(tcti=tcti)
    key = tpm_tls.write_key_file(rot, Path(directory))
    transport = MqttTransport(
        host=host,
        port=int(port),
        client_id=device,
        ca_path=Path(ca),
        cert_path=Path(cert),
        key_path=key,
    )
    transport.connect()
    transport.publish(f"sevenfold/d/{device}/up", b"signed by the TPM")
    print("connected", flush=True)
    transport.close()
    rot.close()


if __name__ == "__main__":
    main(*sys.argv[1:8])
