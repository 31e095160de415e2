"""Mutual TLS to a real Mosquitto with the DeviceID key inside a real TPM (swtpm + tpm2-abrmd).

The device process opens its key through OpenSSL's tpm2 provider
(``device_runtime/ports/cpython/tpm_tls.py``); the broker accepts it with the
certificate the fleet CA signed from the TPM's CSR. The key file it uses is a
TPM-wrapped blob: the same certificate with that file in a process without the
TPM, or with another TPM, cannot complete a handshake.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from device_runtime.core.errors import RootOfTrustError
from device_runtime.ports.cpython import tpm_tls
from device_runtime.rot.tpm import TpmRootOfTrust
from device_runtime.simulated_tpm import SimulatedTpm, TpmResourceManager
from fleet_platform.broker import MosquittoBroker
from fleet_platform.pki import CertificateAuthority
from tests.broker_fixtures import Grant, session_to
from tests.swtpm_fixtures import swtpm, tpm_resource_manager

__all__ = ["swtpm", "tpm_resource_manager"]

REPO = Path(__file__).resolve().parents[3]


def _device_certificate(
    rot: TpmRootOfTrust, fleet_ca: CertificateAuthority, device: str, directory: Path
) -> Path:
    pem = x509.load_der_x509_csr(rot.csr(device)).public_bytes(serialization.Encoding.PEM)
    cert = directory / "device.crt"
    cert.write_bytes(fleet_ca.sign_csr(pem, required_common_name=device))
    return cert


def _run_device(
    manager: TpmResourceManager, broker: MosquittoBroker, cert: Path, device: str, work: Path
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        **manager.environment(),
        **tpm_tls.environment(tcti=manager.tcti, directory=work),
    }
    return subprocess.run(
        [
            sys.executable, "-m", "tests.device_runtime.rot.tpm_tls_device", manager.tcti,
            str(work), broker.host, str(broker.port), str(broker.ca_path), str(cert), device,
        ],
        capture_output=True, text=True, timeout=60, env=env, cwd=REPO,
    )  # fmt: skip


def test_tpm_device_connects_with_its_tpm_resident_key(
    tpm_resource_manager: TpmResourceManager,
    mtls_broker: MosquittoBroker,
    fleet_ca: CertificateAuthority,
    grant: Grant,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    device = "tpm-" + uuid.uuid4().hex[:10]
    grant(device)
    for name, value in tpm_resource_manager.environment().items():
        monkeypatch.setenv(name, value)
    rot = TpmRootOfTrust.open(tcti=tpm_resource_manager.tcti)
    try:
        cert = _device_certificate(rot, fleet_ca, device, tmp_path)
    finally:
        rot.close()
    server = session_to(
        mtls_broker,
        fleet_ca.issue_client(common_name="sevenfold-server", directory=tmp_path / "s"),
        client_id="srv-" + device,
    )
    try:
        assert server.subscribe(f"sevenfold/d/{device}/up") == [1]
        result = _run_device(tpm_resource_manager, mtls_broker, cert, device, tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
        assert "connected" in result.stdout
        assert server.receive() == (f"sevenfold/d/{device}/up", b"signed by the TPM")
    finally:
        server.close()


def test_the_key_file_opens_nothing_in_another_tpm(
    tpm_resource_manager: TpmResourceManager,
    fleet_ca: CertificateAuthority,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in tpm_resource_manager.environment().items():
        monkeypatch.setenv(name, value)
    rot = TpmRootOfTrust.open(tcti=tpm_resource_manager.tcti)
    try:
        pem = rot.tls_private_key_pem()
    finally:
        rot.close()
    assert pem.startswith(b"-----BEGIN TSS2 PRIVATE KEY-----\n")
    other = SimulatedTpm(directory=tmp_path / "other")
    other.start()
    try:
        script = (
            "import sys; from device_runtime.ports.cpython import tpm_tls\n"
            "import ssl; ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)\n"
            "ctx.load_cert_chain(sys.argv[1], sys.argv[2])\n"
        )
        key = tmp_path / "key.pem"
        key.write_bytes(pem)
        cert = _self_signed_for(pem, tmp_path)
        env = {**os.environ, **tpm_tls.environment(tcti=other.tcti, directory=tmp_path)}
        result = subprocess.run(
            [sys.executable, "-c", script, str(cert), str(key)],
            capture_output=True, text=True, timeout=60, env=env, cwd=REPO,
        )  # fmt: skip
        assert result.returncode != 0
    finally:
        other.kill()


def _self_signed_for(pem: bytes, directory: Path) -> Path:
    """Any certificate file: loading must fail on the key, before the certificate matters."""
    ca = CertificateAuthority.create(common_name="unrelated", directory=directory / "ca")
    return ca.cert_path


def test_a_tpm_without_the_blob_says_so(swtpm: SimulatedTpm) -> None:
    rot = TpmRootOfTrust.open(tcti=swtpm.tcti)
    try:
        from tpm2_pytss.constants import ESYS_TR  # type: ignore[import-untyped]

        from device_runtime.rot.tpm import IDENTITY_BLOB_INDEX

        esapi = rot._esapi
        esapi.nv_undefine_space(esapi.tr_from_tpmpublic(IDENTITY_BLOB_INDEX), ESYS_TR.OWNER)
        try:
            rot.tls_private_key_pem()
        except RootOfTrustError as exc:
            assert "no loadable copy" in exc.reason
        else:
            raise AssertionError("a missing blob must be refused")
    finally:
        rot.close()
