"""Factory provisioning end to end: boards on pseudo-terminals, a real fleet server, pyserial.

Each board is a :class:`ConsoleDevice` (the portable console on a pty); the
station is ``sevenfold factory provision``; the server is a real FleetServer
with its managed Mosquitto. A provisioned board then enrolls and heartbeats
over mTLS with the fleet certificate it was given.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from tpm2_pytss.constants import TPMA_OBJECT  # type: ignore[import-untyped]
from typer.testing import CliRunner

from attestation_server import tpm_identity
from device_runtime.console_device import (
    TPM_TCTI_FILE,
    ConsoleDevice,
    derived_root,
    tpm_root,
)
from device_runtime.ports.cpython import tpm_tls
from device_runtime.simulated_board import run_board
from device_runtime.simulated_tpm import SimulatedTpm, TpmResourceManager
from fleet_platform import api_tokens
from fleet_platform.pki import CertificateAuthority, fleet_authority
from fleet_platform.server_config import ServerConfig
from sevenfold import factory_station
from sevenfold.cli.app import app
from sevenfold.factory_station import init_ca
from sevenfold.server import FleetServer
from tests.attestation_server.tpm_areas import QUOTE_KEY, software_public, without_attributes
from tests.components import binary
from tests.firmware_fixtures import SampleFirmware
from tests.swtpm_fixtures import swtpm

__all__ = ["swtpm"]

runner = CliRunner()
HWMODEL = "sim-board-1"


@pytest.fixture(scope="module")
def maker(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The line's manufacturer CA (factory init-ca), made before the server that trusts it."""
    directory = tmp_path_factory.mktemp("line") / "ca"
    init_ca(directory)
    return directory


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory, maker: Path) -> Iterator[FleetServer]:
    binary("mosquitto")
    state = tmp_path_factory.mktemp("factory") / "state"
    config = ServerConfig(
        state_dir=state, http_port=0, broker_port=0, recovery_port=0, heartbeat_interval=1,
        manufacturer_cas=(maker / "ca.pem",),
    )  # fmt: skip
    with FleetServer(config=config) as server:
        yield server


@pytest.fixture(scope="module")
def line(fleet: FleetServer, maker: Path) -> dict[str, Path]:
    """The manufacturer CA and the factory token file, as an operator sets up a station."""
    directory = maker.parent
    token = api_tokens.read(fleet.config.state_dir, name=api_tokens.FACTORY)
    assert token is not None
    (directory / "factory.token").write_text(token)
    return {"ca": maker, "token": directory / "factory.token"}


def _station(
    fleet: FleetServer,
    line: dict[str, Path],
    *args: str,
    allow_software: bool = True,
    server: str | None = None,
) -> tuple[int, dict[str, Any]]:
    result = runner.invoke(
        app,
        [
            "factory", "provision", "--server", server or fleet.http_url, "--token-file",
            str(line["token"]), "--ca", str(line["ca"]), "--timeout", "2", "--json",
            *(["--allow-software"] if allow_software else []), *args,
        ],
    )  # fmt: skip
    try:
        report = json.loads(result.stdout)
    except ValueError:
        raise AssertionError(result.output) from None
    return result.exit_code, report


def _board(tmp_path: Path, serial: str, **kwargs: Any) -> ConsoleDevice:
    device = ConsoleDevice(
        directory=tmp_path / serial, hwmodel=kwargs.pop("hwmodel", HWMODEL), serial=serial, **kwargs
    )
    device.start()
    return device


def _registration(fleet: FleetServer, device_id: str) -> Any:
    assert fleet.app is not None
    return fleet_registry(fleet).get(device_id)


def fleet_registry(fleet: FleetServer) -> Any:
    from attestation_server.provisioning import ProvisioningRegistry
    from fleet_platform.manufacturer_cas import trusted_manufacturer_cas
    from fleet_platform.pki import fleet_authority

    assert fleet.database is not None
    return ProvisioningRegistry(
        database=fleet.database,
        authority=fleet_authority(fleet.config.state_dir),
        manufacturer_cas=lambda: trusted_manufacturer_cas(fleet.config.state_dir),
    )


def test_a_board_is_provisioned_over_its_pty_then_enrolls_and_heartbeats_over_mtls(
    fleet: FleetServer, line: dict[str, Path], tmp_path: Path, sample_firmware: SampleFirmware
) -> None:
    with _board(tmp_path, "0001") as board:
        code, report = _station(fleet, line, "--port", board.path, "--hwmodel", HWMODEL)
        assert code == 0, report
        [result] = report["boards"]
        assert (result["device_id"], result["kind"], result["ok"]) == (
            "sim-board-1-0001", "software", True,
        )  # fmt: skip
        installed = board.installed()
        assert installed is not None and installed["device_id"] == "sim-board-1-0001"
    registered = _registration(fleet, "sim-board-1-0001")
    assert (registered.rot_kind, registered.hwmodel) == ("software", HWMODEL)
    point = board.rot.identity_key().public_key()
    assert registered.public_key == point.hex()
    fleet_cert = x509.load_der_x509_certificate(installed["fleet-cert"])  # type: ignore[arg-type]
    assert (
        fleet_cert.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        == point
    )

    # The board, as its own process runs it: a software root of trust is for development
    # only, so the operator admits it through a group's policy; then it attests through the
    # recovery listener, enrolls and heartbeats with the fleet certificate it earned.
    operator = api_tokens.read(fleet.config.state_dir)
    headers = {"Authorization": f"Bearer {operator}"}
    for method, path, body in (
        (
            "POST",
            "/api/v1/endorsements",
            {"hwmodel": HWMODEL, "digest": sample_firmware.image_hash("1.0.0").hex()},
        ),
        ("PUT", "/api/v1/policies/line-test", {"allowed_roots": ["software"]}),
        ("PUT", "/api/v1/attestation/sim-board-1-0001/group", {"group": "line-test"}),
    ):
        httpx.request(
            method, f"{fleet.http_url}{path}", headers=headers, json=body
        ).raise_for_status()
    sample_firmware.install(tmp_path / "0001", "1.0.0")
    device = run_board(
        directory=tmp_path / "0001", kind="software", hwmodel=HWMODEL, beats=2,
        prefix=fleet.config.prefix,
    )  # fmt: skip
    assert device.error is None and device.attested and device.beats == 2
    assert device.firmware == "1.0.0" and len(device.readings) == 2

    listed = httpx.get(f"{fleet.http_url}/api/v1/devices/sim-board-1-0001", headers=headers).json()
    assert listed["proven"]["rot_kind"] == "software"
    assert listed["proven"]["public_key"] == point.hex()
    shown = runner.invoke(
        app, ["devices", "list", "--state", str(fleet.config.state_dir)], env={"COLUMNS": "300"}
    )
    row = next(r for r in shown.stdout.splitlines() if "sim-board-1-0001" in r)
    assert "software (proven)" in row and f"{HWMODEL} (proven)" in row


def test_a_batch_with_count_and_a_second_run_is_refused_then_reprovisioned(
    fleet: FleetServer, line: dict[str, Path], tmp_path: Path
) -> None:
    boards = [_board(tmp_path, f"01{n}") for n in range(3)]
    try:
        ports = [arg for board in boards for arg in ("--port", board.path)]
        code, report = _station(fleet, line, *ports, "--count", "3")
        assert code == 0, [board["error"] for board in report["boards"]]
        assert report["provisioned"] == 3
        code, report = _station(fleet, line, *ports)
        assert code == 1
        assert {board["code"] for board in report["boards"]} == {"already-provisioned"}
        code, report = _station(fleet, line, "--port", boards[0].path, "--reprovision")
        assert code == 0, report
        assert report["boards"][0]["new_registration"] is False
    finally:
        for board in boards:
            board.stop()


def test_a_station_that_dies_after_registering_is_completed_by_the_next_run(
    fleet: FleetServer, line: dict[str, Path], tmp_path: Path
) -> None:
    """The board stalls at install; the station process is killed; a rerun finishes."""
    with _board(tmp_path, "0201") as board:
        board.stall_on.add("put")
        station = subprocess.Popen(
            [
                sys.executable, "-m", "sevenfold.cli", "factory", "provision", "--port",
                board.path, "--server", fleet.http_url, "--token-file", str(line["token"]),
                "--ca", str(line["ca"]), "--timeout", "60", "--json", "--allow-software",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while not board.stalled:
                assert time.monotonic() < deadline and station.poll() is None
                time.sleep(0.05)
        finally:
            os.kill(station.pid, signal.SIGKILL)
            station.wait()
        assert _registration(fleet, "sim-board-1-0201") is not None
        assert board.installed() is None
        board.resume()
        code, report = _station(fleet, line, "--port", board.path)
        assert code == 0, report
        assert report["boards"][0]["new_registration"] is False
        assert board.installed() is not None


@pytest.mark.parametrize(("hook", "expected"), [("stall_on", "stalled"), ("reboot_on", "rebooted")])
def test_a_stalled_or_rebooting_board_gets_a_specific_error_and_is_not_registered(
    fleet: FleetServer, line: dict[str, Path], tmp_path: Path, hook: str, expected: str
) -> None:
    serial = f"03{hook[:2]}"
    with _board(tmp_path, serial) as board:
        getattr(board, hook).add("csr")
        code, report = _station(fleet, line, "--port", board.path)
    assert code == 1
    assert report["boards"][0]["code"] == expected, report
    assert _registration(fleet, f"sim-board-1-{serial}") is None


def test_a_board_rebooting_after_registration_is_not_installed(
    fleet: FleetServer, line: dict[str, Path], tmp_path: Path
) -> None:
    with _board(tmp_path, "0401") as board:
        board.reboot_on.add("put")
        code, report = _station(fleet, line, "--port", board.path)
        assert code == 1 and report["boards"][0]["code"] == "rebooted", report
        assert board.installed() is None
        code, report = _station(fleet, line, "--port", board.path)
        assert code == 0, report


def test_an_unknown_hardware_model_is_refused_before_anything_is_signed(
    fleet: FleetServer, line: dict[str, Path], tmp_path: Path
) -> None:
    with _board(tmp_path, "0501", hwmodel="rogue-board") as board:
        code, report = _station(fleet, line, "--port", board.path, "--hwmodel", HWMODEL)
    assert code == 1 and report["boards"][0]["code"] == "unknown-hwmodel"
    assert _registration(fleet, "rogue-board-0501") is None


class _ForgedCsrRoot:
    """A board whose CSR carries one key but is signed by another: no proof of possession."""

    kind = "software"

    def __init__(self, directory: Path) -> None:
        self._root = derived_root("software")(directory)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._root, name)

    def csr(self, common_name: str) -> bytes:
        good = x509.load_der_x509_csr(self._root.csr(common_name))
        other = ec.generate_private_key(ec.SECP256R1())
        forged = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .sign(other, hashes.SHA256())
            .public_bytes(serialization.Encoding.DER)
        )
        theirs = other.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        mine = good.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return forged.replace(theirs, mine)


def test_a_csr_whose_signature_is_not_its_keys_fails_proof_of_possession(
    fleet: FleetServer, line: dict[str, Path], tmp_path: Path
) -> None:
    with _board(tmp_path, "0601", rot=_ForgedCsrRoot) as board:
        code, report = _station(fleet, line, "--port", board.path)
    assert code == 1 and report["boards"][0]["code"] == "proof-of-possession", report
    assert _registration(fleet, "sim-board-1-0601") is None


def test_the_same_serial_on_another_board_is_a_conflict(
    fleet: FleetServer, line: dict[str, Path], tmp_path: Path
) -> None:
    with _board(tmp_path / "a", "0701") as first:
        assert _station(fleet, line, "--port", first.path)[0] == 0
    with _board(tmp_path / "b", "0701") as clone:
        code, report = _station(fleet, line, "--port", clone.path)
        assert code == 1 and report["boards"][0]["code"] == "conflict", report
        assert clone.installed() is None
    registered = _registration(fleet, "sim-board-1-0701")
    assert registered.public_key == first.rot.identity_key().public_key().hex()


def test_two_boards_with_one_device_id_in_a_batch(
    fleet: FleetServer, line: dict[str, Path], tmp_path: Path
) -> None:
    with _board(tmp_path / "a", "0801") as one, _board(tmp_path / "b", "0801") as two:
        code, report = _station(fleet, line, "--port", one.path, "--port", two.path)
    assert code == 1
    codes = sorted(str(board["code"]) for board in report["boards"])
    assert codes == ["None", "duplicate-device-id"], report


def test_wrong_token_kinds_are_refused(
    fleet: FleetServer, line: dict[str, Path], tmp_path: Path
) -> None:
    for name in (api_tokens.OPERATOR, api_tokens.SENSOR):
        token = api_tokens.read(fleet.config.state_dir, name=name)
        assert token is not None
        (tmp_path / f"{name}.token").write_text(token)
        with _board(tmp_path / name, "0901") as board:
            code, report = _station(
                fleet, {**line, "token": tmp_path / f"{name}.token"}, "--port", board.path
            )
        assert code == 1 and report["boards"][0]["code"] == "unauthorized", report
    assert _registration(fleet, "sim-board-1-0901") is None


def test_init_ca_makes_0600_keys_and_refuses_to_overwrite(tmp_path: Path) -> None:
    first = runner.invoke(app, ["factory", "init-ca", "--dir", str(tmp_path / "ca")])
    assert first.exit_code == 0, first.output
    for name in ("ca.key", "ca.pem"):
        assert (tmp_path / "ca" / name).stat().st_mode & 0o077 == 0
    again = runner.invoke(app, ["factory", "init-ca", "--dir", str(tmp_path / "ca")])
    assert again.exit_code == 2 and "already exists" in again.output


# --- TPM boards: a real swtpm with an EK certificate from its vendor's CA ---------------------


def _tpm_board(tmp_path: Path, serial: str, tpm: SimulatedTpm, **kwargs: Any) -> ConsoleDevice:
    directory = tmp_path / serial
    directory.mkdir(parents=True)
    (directory / TPM_TCTI_FILE).write_text(tpm.tcti)
    return _board(tmp_path, serial, rot=kwargs.pop("rot", "tpm"), **kwargs)


def test_a_tpm_board_proves_its_ek_and_a_resident_key_and_is_registered_as_tpm(
    fleet: FleetServer, line: dict[str, Path], tmp_path: Path, swtpm: SimulatedTpm
) -> None:
    with _tpm_board(tmp_path, "0901", swtpm) as board:
        code, report = _station(
            fleet, line, "--port", board.path, "--tpm-ca", str(swtpm.ek_ca_certificate)
        )
        assert code == 0, report
        assert report["boards"][0]["kind"] == "tpm"
        point = board.rot.identity_key().public_key()
        registered = _registration(fleet, "sim-board-1-0901")
        assert (registered.rot_kind, registered.public_key) == ("tpm", point.hex())
        # What a verifier later does with the recorded quote key: believe the board's quote.
        rot = board.rot
        assert registered.quote_key == rot.quote_public().hex()  # type: ignore[attr-defined]
        rot.extend(3, hashlib.sha256(b"firmware").digest())
        nonce = os.urandom(32)
        attest, signature = rot.quote(nonce)  # type: ignore[attr-defined]
        values = dict(enumerate(rot.measurements()))  # type: ignore[attr-defined]
    recorded = bytes.fromhex(registered.quote_key)
    info = tpm_identity.verify_quote(recorded, attest, signature, nonce, values)
    assert info.registers == tuple(range(8))
    with pytest.raises(tpm_identity.QuoteError, match="digest"):
        tpm_identity.verify_quote(recorded, attest, signature, nonce, {**values, 3: bytes(32)})


def test_a_tpm_board_needs_its_vendors_ca_and_a_foreign_one_is_refused(
    fleet: FleetServer, line: dict[str, Path], tmp_path: Path, swtpm: SimulatedTpm
) -> None:
    foreign = CertificateAuthority.create(common_name="not a TPM vendor", directory=tmp_path / "x")
    with _tpm_board(tmp_path, "0902", swtpm) as board:
        code, report = _station(fleet, line, "--port", board.path)
        assert code == 1 and report["boards"][0]["code"] == "tpm-ca-required", report
        code, report = _station(
            fleet, line, "--port", board.path, "--tpm-ca", str(foreign.cert_path)
        )
        assert code == 1 and report["boards"][0]["code"] == "tpm-identity", report
        assert board.installed() is None
    assert _registration(fleet, "sim-board-1-0902") is None


class _SoftwareKeyOnATpm:
    """A board that shows its TPM's identity but sends a CSR for a key outside the TPM."""

    kind = "tpm"

    def __init__(self, directory: Path) -> None:
        self._tpm = tpm_root(directory)
        self._software = derived_root("software")(directory / "software")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tpm, name)

    def identity_key(self) -> Any:
        return self._software.identity_key()

    def csr(self, common_name: str) -> bytes:
        return self._software.csr(common_name)


def test_a_csr_for_a_key_that_is_not_tpm_resident_is_refused(
    fleet: FleetServer, line: dict[str, Path], tmp_path: Path, swtpm: SimulatedTpm
) -> None:
    with _tpm_board(tmp_path, "0903", swtpm, rot=_SoftwareKeyOnATpm) as board:
        code, report = _station(
            fleet, line, "--port", board.path, "--tpm-ca", str(swtpm.ek_ca_certificate)
        )
        assert code == 1 and report["boards"][0]["code"] == "not-resident", report
        assert board.installed() is None
    assert _registration(fleet, "sim-board-1-0903") is None


class _QuoteKeyLie:
    """A TPM board that lies about its quote key: it shows another key's public area (its
    DeviceID key's, its own claiming less, a key outside its TPM) or answers the quote key's
    credential challenge with bytes of its own."""

    kind = "tpm"

    def __init__(self, directory: Path, lie: str) -> None:
        self._tpm = tpm_root(directory)
        self._lie = lie

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tpm, name)

    def quote_public(self) -> bytes:
        genuine: bytes = self._tpm.quote_public()  # type: ignore[attr-defined]
        if self._lie == "the DeviceID key's":
            return self._tpm.identity_public()  # type: ignore[attr-defined,no-any-return]
        if self._lie == "not resident":
            return without_attributes(genuine, int(TPMA_OBJECT.FIXEDTPM))
        if self._lie == "a key outside its TPM":
            return software_public(int(QUOTE_KEY))
        return genuine

    def activate_credential(self, blob: bytes, secret: bytes, key: str = "identity") -> bytes:
        if self._lie == "a wrong answer" and key == "quote":
            return os.urandom(32)
        return self._tpm.activate_credential(blob, secret, key)  # type: ignore[attr-defined,no-any-return]


QUOTE_KEY_LIES = {
    "the DeviceID key's": ("tpm-identity", "quote key is not restricted"),
    "not resident": ("tpm-identity", "quote key lacks fixedTPM"),
    "a key outside its TPM": ("tpm-challenge", "refused the credential challenge for its quote"),
    "a wrong answer": ("tpm-challenge", "did not answer the credential challenge for its quote"),
}


@pytest.mark.parametrize("lie", list(QUOTE_KEY_LIES))
def test_a_quote_key_the_board_cannot_prove_is_refused_and_nothing_is_registered(
    fleet: FleetServer, line: dict[str, Path], tmp_path: Path, swtpm: SimulatedTpm, lie: str
) -> None:
    serial = f"095{list(QUOTE_KEY_LIES).index(lie)}"
    with _tpm_board(tmp_path, serial, swtpm, rot=lambda d: _QuoteKeyLie(d, lie)) as board:
        code, report = _station(
            fleet, line, "--port", board.path, "--tpm-ca", str(swtpm.ek_ca_certificate)
        )
        expected, reason = QUOTE_KEY_LIES[lie]
        assert code == 1 and report["boards"][0]["code"] == expected, report
        assert reason in report["boards"][0]["error"], report
        assert board.installed() is None
    assert _registration(fleet, f"sim-board-1-{serial}") is None


def test_a_tpm_that_stops_answering_is_a_specific_error_and_nothing_is_registered(
    fleet: FleetServer, line: dict[str, Path], tmp_path: Path, swtpm: SimulatedTpm
) -> None:
    with _tpm_board(tmp_path, "0904", swtpm) as board:
        swtpm.kill()
        code, report = _station(
            fleet, line, "--port", board.path, "--tpm-ca", str(swtpm.ek_ca_certificate)
        )
        assert code == 1, report
        assert "TPM" in report["boards"][0]["error"], report
        assert board.installed() is None
    assert _registration(fleet, "sim-board-1-0904") is None


# --- DICE boards: the manufacturer certifies the DeviceID key, which certifies the Alias key ----


def test_a_dice_board_is_provisioned_and_its_alias_chain_verifies_with_openssl(
    fleet: FleetServer, line: dict[str, Path], tmp_path: Path
) -> None:
    with _board(tmp_path, "1001", rot="dice") as board:
        code, report = _station(fleet, line, "--port", board.path)
        assert code == 0, report
        assert report["boards"][0]["kind"] == "dice"
        installed = board.installed()
        assert installed is not None
        deviceid_der = installed["device-cert"]
        assert isinstance(deviceid_der, bytes)
        alias_der, _ = board.rot.certificate_chain(deviceid_der, "sim-board-1-1001")  # type: ignore[attr-defined]
    registered = _registration(fleet, "sim-board-1-1001")
    assert registered.rot_kind == "dice"
    pem = {
        "alias": x509.load_der_x509_certificate(alias_der),
        "deviceid": x509.load_der_x509_certificate(deviceid_der),
    }
    for name, cert in pem.items():
        (tmp_path / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    verify = subprocess.run(
        [
            binary("openssl"), "verify", "-CAfile", str(line["ca"] / "ca.pem"),
            "-untrusted", str(tmp_path / "deviceid.pem"), str(tmp_path / "alias.pem"),
        ],
        capture_output=True, text=True,
    )  # fmt: skip
    assert verify.returncode == 0, verify.stdout + verify.stderr
    constraints = pem["deviceid"].extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca and constraints.path_length == 0


def test_a_dice_deviceid_cannot_vouch_for_another_devices_name(
    fleet: FleetServer, line: dict[str, Path], tmp_path: Path
) -> None:
    """Its name constraint permits only names under its own: a certificate it signs for
    another device id does not verify, so a cloned DeviceID cannot mint identities."""
    with _board(tmp_path, "1002", rot="dice") as board:
        assert _station(fleet, line, "--port", board.path)[0] == 0
        installed = board.installed()
        assert installed is not None
        deviceid_der = installed["device-cert"]
        assert isinstance(deviceid_der, bytes)
        forged, _ = board.rot.certificate_chain(deviceid_der, "sim-board-1-9999")  # type: ignore[attr-defined]
    (tmp_path / "deviceid.pem").write_bytes(
        x509.load_der_x509_certificate(deviceid_der).public_bytes(serialization.Encoding.PEM)
    )
    (tmp_path / "forged.pem").write_bytes(
        x509.load_der_x509_certificate(forged).public_bytes(serialization.Encoding.PEM)
    )
    verify = subprocess.run(
        [
            binary("openssl"), "verify", "-CAfile", str(line["ca"] / "ca.pem"),
            "-untrusted", str(tmp_path / "deviceid.pem"), str(tmp_path / "forged.pem"),
        ],
        capture_output=True, text=True,
    )  # fmt: skip
    assert verify.returncode != 0
    assert "permitted subtree violation" in verify.stdout + verify.stderr


def test_a_provisioned_tpm_board_enrolls_and_heartbeats_with_its_tpm_held_key(
    fleet: FleetServer,
    line: dict[str, Path],
    tmp_path: Path,
    swtpm: SimulatedTpm,
    sample_firmware: SampleFirmware,
) -> None:
    """The whole life of a TPM board: console provisioning, then its own process attesting
    (token signed by its TPM-held DeviceID key, a TPM quote over PCRs 8 and 9 by its
    registered quote key) through the recovery listener, and connecting over mTLS through
    OpenSSL's tpm2 provider (via tpm2-abrmd) with the fleet certificate it earned."""
    operator = api_tokens.read(fleet.config.state_dir)
    headers = {"Authorization": f"Bearer {operator}"}
    httpx.post(
        f"{fleet.http_url}/api/v1/endorsements",
        headers=headers,
        json={"hwmodel": HWMODEL, "digest": sample_firmware.image_hash("1.0.0").hex()},
    ).raise_for_status()
    with _tpm_board(tmp_path, "1101", swtpm) as board:
        code, report = _station(
            fleet, line, "--port", board.path, "--tpm-ca", str(swtpm.ek_ca_certificate)
        )
        assert code == 0, report
    manager = TpmResourceManager(tpm=swtpm, directory=tmp_path / "abrmd")
    manager.start()
    try:
        directory = tmp_path / "1101"
        sample_firmware.install(directory, "1.0.0")
        (directory / TPM_TCTI_FILE).write_text(manager.tcti)
        env = {
            **os.environ,
            **manager.environment(),
            **tpm_tls.environment(tcti=manager.tcti, directory=directory),
        }
        run = subprocess.run(
            [
                sys.executable, "-m", "device_runtime.simulated_board", "--dir", str(directory),
                "--kind", "tpm", "--hwmodel", HWMODEL, "--beats", "2",
            ],
            capture_output=True, text=True, timeout=120, env=env,
        )  # fmt: skip
    finally:
        manager.stop()
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    outcome = json.loads(run.stdout.splitlines()[-1])
    assert (outcome["device_id"], outcome["beats"], outcome["error"]) == (
        "sim-board-1-1101", 2, None,
    )  # fmt: skip
    assert outcome["attested"] is True
    listed = httpx.get(f"{fleet.http_url}/api/v1/devices/sim-board-1-1101", headers=headers).json()
    assert listed["proven"]["rot_kind"] == "tpm"
    assert listed["status"] == "online"
    # The configuration is nobody's endorsed one: a pass with a warning, and why.
    assert listed["attestation"]["status"] == "warning" and listed["attestation"]["holds_pass"]
    history = httpx.get(
        f"{fleet.http_url}/api/v1/attestation/sim-board-1-1101", headers=headers
    ).json()["history"]
    assert history[0]["via_recovery"] is True
    assert history[0]["trustworthiness"]["hardware"] == 2  # a TPM, proven at the factory


# --- What the server trusts, and what the station checks of the server --------------------------


def test_a_software_board_is_refused_unless_the_line_allows_software(
    fleet: FleetServer, line: dict[str, Path], tmp_path: Path
) -> None:
    with _board(tmp_path, "1201") as board:
        code, report = _station(fleet, line, "--port", board.path, allow_software=False)
        assert code == 1 and report["boards"][0]["code"] == "software-root-of-trust", report
        assert board.installed() is None
    assert _registration(fleet, "sim-board-1-1201") is None


def test_a_manufacturer_ca_the_server_does_not_trust_registers_nothing(
    fleet: FleetServer, line: dict[str, Path], tmp_path: Path
) -> None:
    """A station with the factory token but its own CA cannot register proven devices."""
    init_ca(tmp_path / "rogue")
    rogue = {**line, "ca": tmp_path / "rogue"}
    with _board(tmp_path, "1301") as board:
        code, report = _station(fleet, rogue, "--port", board.path)
        assert code == 1 and report["boards"][0]["code"] == "untrusted-manufacturer", report
        assert "(422)" in report["boards"][0]["error"]
        assert board.installed() is None
    assert _registration(fleet, "sim-board-1-1301") is None


def test_a_server_that_trusts_no_manufacturer_ca_says_so(
    fleet: FleetServer, line: dict[str, Path], tmp_path: Path
) -> None:
    trusted = fleet.config.state_dir / "manufacturer-cas"
    aside = fleet.config.state_dir / "manufacturer-cas.aside"
    trusted.rename(aside)
    try:
        with _board(tmp_path, "1401") as board:
            code, report = _station(fleet, line, "--port", board.path)
    finally:
        aside.rename(trusted)
    assert code == 1 and report["boards"][0]["code"] == "no-manufacturer-ca", report
    assert _registration(fleet, "sim-board-1-1401") is None


def test_a_reprovision_to_a_weaker_root_of_trust_is_refused(
    fleet: FleetServer, line: dict[str, Path], tmp_path: Path
) -> None:
    with _board(tmp_path / "a", "1501", rot="dice") as dice:
        assert _station(fleet, line, "--port", dice.path)[0] == 0
    with _board(tmp_path / "b", "1501") as software:
        code, report = _station(fleet, line, "--port", software.path, "--reprovision")
        assert code == 1 and report["boards"][0]["code"] == "downgrade", report
        assert "(409)" in report["boards"][0]["error"]
        assert software.installed() is None
    registered = _registration(fleet, "sim-board-1-1501")
    assert registered.rot_kind == "dice"


class _Proxy:
    """A local HTTP server in front of the fleet server: it can answer 503, drop the
    connection or alter the registration's answer, per request, and counts requests."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.plan: list[str] = []
        """What to do with each next request: "503", "drop"; forwarded once it is empty."""
        self.alter: Callable[[dict[str, Any], dict[str, Any]], None] | None = None
        self.requests = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                proxy.requests += 1
                body = self.rfile.read(int(self.headers["Content-Length"]))
                action = proxy.plan.pop(0) if proxy.plan else "forward"
                if action == "drop":
                    self.close_connection = True
                    return
                if action == "503":
                    status, answer = 503, {"detail": "storage unavailable: test"}
                else:
                    forwarded = httpx.post(
                        proxy.upstream + self.path,
                        content=body,
                        headers={
                            "Authorization": self.headers["Authorization"],
                            "Content-Type": "application/json",
                        },
                    )
                    status, answer = forwarded.status_code, forwarded.json()
                    if proxy.alter is not None and status == 200:
                        proxy.alter(json.loads(body), answer)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def proxy(fleet: FleetServer) -> Iterator[_Proxy]:
    running = _Proxy(fleet.http_url)
    yield running
    running.close()


def _pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def _signed_by_fleet_ca(fleet: FleetServer, common_name: str, public: Any) -> str:
    """A certificate the fleet CA's key signs, for any key and name (what a bad server sends)."""
    authority = fleet_authority(fleet.config.state_dir)
    key = serialization.load_pem_private_key(
        (authority.directory / "ca.key").read_bytes(), password=None
    )
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(authority.certificate.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return _pem(certificate)


def _csr_key(request: dict[str, Any]) -> Any:
    return x509.load_der_x509_csr(base64.b64decode(request["csr"])).public_key()


BAD_ANSWERS: dict[str, Callable[[FleetServer, Path], Callable[..., None]]] = {
    "another key": lambda fleet, tmp: (
        lambda request, answer: answer.update(
            fleet_certificate=_signed_by_fleet_ca(
                fleet, request["device_id"], ec.generate_private_key(ec.SECP256R1()).public_key()
            )
        )
    ),
    "another name": lambda fleet, tmp: (
        lambda request, answer: answer.update(
            fleet_certificate=_signed_by_fleet_ca(fleet, "sim-board-1-9998", _csr_key(request))
        )
    ),
    "another CA": lambda fleet, tmp: (
        lambda request, answer: answer.update(
            broker_ca=_pem(CertificateAuthority.create(common_name="x", directory=tmp).certificate)
        )
    ),
    "a CA that is no CA": lambda fleet, tmp: (
        lambda request, answer: answer.update(broker_ca=answer["fleet_certificate"])
    ),
    "no certificate": lambda fleet, tmp: (
        lambda request, answer: answer.update(fleet_certificate="not a certificate")
    ),
}


@pytest.mark.parametrize("tampering", list(BAD_ANSWERS))
def test_an_answer_that_does_not_fit_the_board_is_not_installed(
    fleet: FleetServer, line: dict[str, Path], tmp_path: Path, proxy: _Proxy, tampering: str
) -> None:
    proxy.alter = BAD_ANSWERS[tampering](fleet, tmp_path / "other-ca")
    serial = f"16{list(BAD_ANSWERS).index(tampering):02d}"
    with _board(tmp_path, serial) as board:
        code, report = _station(fleet, line, "--port", board.path, server=proxy.url)
        assert code == 1 and report["boards"][0]["code"] == "bad-answer", report
        assert board.installed() is None
        proxy.alter = None
        code, report = _station(fleet, line, "--port", board.path, server=proxy.url)
        assert code == 0, report
        assert board.installed() is not None


@pytest.mark.parametrize("failure", ["503", "drop"])
def test_a_registration_the_server_could_not_serve_is_tried_again(
    fleet: FleetServer, line: dict[str, Path], tmp_path: Path, proxy: _Proxy, failure: str
) -> None:
    serial = f"17{failure[:2]}"
    proxy.plan = [failure, failure]
    with _board(tmp_path, serial) as board:
        code, report = _station(fleet, line, "--port", board.path, server=proxy.url)
        assert code == 0, report
        assert board.installed() is not None
    assert proxy.requests == 3
    assert _registration(fleet, f"sim-board-1-{serial}") is not None


def test_a_server_that_stays_unavailable_is_tried_register_attempts_times(
    fleet: FleetServer,
    line: dict[str, Path],
    tmp_path: Path,
    proxy: _Proxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(factory_station, "REGISTER_BACKOFF_S", 0.01)
    proxy.plan = ["503"] * factory_station.REGISTER_ATTEMPTS
    with _board(tmp_path, "1801") as board:
        code, report = _station(fleet, line, "--port", board.path, server=proxy.url)
        assert code == 1 and report["boards"][0]["code"] == "server-unavailable", report
        assert board.installed() is None
    assert proxy.requests == factory_station.REGISTER_ATTEMPTS
    assert _registration(fleet, "sim-board-1-1801") is None


def test_a_422_names_where_and_why_but_never_echoes_the_input(
    fleet: FleetServer, line: dict[str, Path]
) -> None:
    hostile = "<script>" + "x" * 50_000
    answer = httpx.post(
        f"{fleet.http_url}/api/v1/provisioned-devices",
        headers={"Authorization": f"Bearer {line['token'].read_text().strip()}"},
        json={"device_id": hostile, "hwmodel": 5, "rot_kind": ["tpm"]},
    )
    assert answer.status_code == 422
    assert len(answer.content) < 2_000, len(answer.content)
    assert "<script>" not in answer.text and "input" not in answer.json()["detail"][0]
    assert {"loc", "msg", "type"} == set(answer.json()["detail"][0])


def test_a_quote_key_that_is_not_base64_oversize_or_misplaced_gets_a_specific_422(
    fleet: FleetServer, line: dict[str, Path]
) -> None:
    def register(rot_kind: str, quote_key: str) -> httpx.Response:
        return httpx.post(
            f"{fleet.http_url}/api/v1/provisioned-devices",
            headers={"Authorization": f"Bearer {line['token'].read_text().strip()}"},
            json={
                "device_id": "sim-board-1-1901", "hwmodel": HWMODEL, "rot_kind": rot_kind,
                "csr": "AAAA", "manufacturer_certificate": "x", "station": "s",
                "quote_key": quote_key,
            },
        )  # fmt: skip

    answer = register("tpm", "not base64!")
    assert answer.status_code == 422 and answer.json()["detail"] == "bad-quote-key: not base64"
    answer = register("tpm", "A" * 400)
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["body", "quote_key"]
    answer = register("software", base64.b64encode(software_public(int(QUOTE_KEY))).decode())
    assert answer.status_code == 422
    assert answer.json()["detail"].startswith("bad-quote-key: a software board has no")
    answer = register("tpm", base64.b64encode(b"\x00\x04garbage").decode())
    assert answer.status_code == 422
    assert answer.json()["detail"].startswith("bad-quote-key: quote key public area")
    assert _registration(fleet, "sim-board-1-1901") is None
