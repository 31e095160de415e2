"""Factory provisioning end to end: boards on pseudo-terminals, a real fleet server, pyserial.

Each board is a :class:`ConsoleDevice` (the portable console on a pty); the
station is ``sevenfold factory provision``; the server is a real FleetServer
with its managed Mosquitto. A provisioned board then enrolls and heartbeats
over mTLS with the fleet certificate it was given.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from typer.testing import CliRunner

from device_runtime.console_device import (
    TPM_TCTI_FILE,
    ConsoleDevice,
    derived_root,
    export_credentials,
    tpm_root,
)
from device_runtime.ports.cpython import tpm_tls
from device_runtime.simulated_tpm import SimulatedTpm, TpmResourceManager
from device_runtime.simulator import BrokerAddress, SimulatedFleet
from fleet_platform import api_tokens
from fleet_platform.pki import CertificateAuthority
from fleet_platform.server_config import ServerConfig
from sevenfold.cli.app import app
from sevenfold.factory_station import init_ca
from sevenfold.server import FleetServer
from tests.components import binary
from tests.swtpm_fixtures import swtpm

__all__ = ["swtpm"]

runner = CliRunner()
HWMODEL = "sim-board-1"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FleetServer]:
    binary("mosquitto")
    state = tmp_path_factory.mktemp("factory") / "state"
    config = ServerConfig(state_dir=state, http_port=0, broker_port=0, heartbeat_interval=1)
    with FleetServer(config=config) as server:
        yield server


@pytest.fixture(scope="module")
def line(fleet: FleetServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A manufacturer CA and the factory token file, as an operator sets up a station."""
    directory = tmp_path_factory.mktemp("line")
    init_ca(directory / "ca")
    token = api_tokens.read(fleet.config.state_dir, name=api_tokens.FACTORY)
    assert token is not None
    (directory / "factory.token").write_text(token)
    return {"ca": directory / "ca", "token": directory / "factory.token"}


def _station(fleet: FleetServer, line: dict[str, Path], *args: str) -> tuple[int, dict[str, Any]]:
    result = runner.invoke(
        app,
        [
            "factory", "provision", "--server", fleet.http_url, "--token-file",
            str(line["token"]), "--ca", str(line["ca"]), "--timeout", "2", "--json", *args,
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
    from fleet_platform.pki import fleet_authority

    assert fleet.database is not None
    return ProvisioningRegistry(
        database=fleet.database, authority=fleet_authority(fleet.config.state_dir)
    )


def test_a_board_is_provisioned_over_its_pty_then_enrolls_and_heartbeats_over_mtls(
    fleet: FleetServer, line: dict[str, Path], tmp_path: Path
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

    assert export_credentials(tmp_path / "0001") is not None
    assert fleet.broker is not None
    simulated = SimulatedFleet(
        directory=tmp_path / "run",
        broker=BrokerAddress(
            host=str(installed["broker_host"]),
            port=int(installed["broker_port"]),  # type: ignore[call-overload]
            ca_path=fleet.broker.ca_path,
            prefix=fleet.config.prefix,
        ),
        certify=lambda csr, device_id: pytest.fail("already provisioned"),
        count=1,
        device_ids=["sim-board-1-0001"],
    )
    simulated.devices[0].directory = tmp_path / "0001"
    simulated.provision()
    simulated.start(beats=2)
    assert simulated.wait(timeout=60)
    assert simulated.devices[0].error is None and simulated.devices[0].beats == 2

    operator = api_tokens.read(fleet.config.state_dir)
    listed = httpx.get(
        f"{fleet.http_url}/api/v1/devices/sim-board-1-0001",
        headers={"Authorization": f"Bearer {operator}"},
    ).json()
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
                "--ca", str(line["ca"]), "--timeout", "60", "--json",
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
    fleet: FleetServer, line: dict[str, Path], tmp_path: Path, swtpm: SimulatedTpm
) -> None:
    """The whole life of a TPM board: console provisioning, then its own process connecting
    over mTLS through OpenSSL's tpm2 provider (via tpm2-abrmd), enrolling and beating."""
    with _tpm_board(tmp_path, "1101", swtpm) as board:
        code, report = _station(
            fleet, line, "--port", board.path, "--tpm-ca", str(swtpm.ek_ca_certificate)
        )
        assert code == 0, report
    manager = TpmResourceManager(tpm=swtpm, directory=tmp_path / "abrmd")
    manager.start()
    try:
        directory = tmp_path / "1101"
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
    operator = api_tokens.read(fleet.config.state_dir)
    listed = httpx.get(
        f"{fleet.http_url}/api/v1/devices/sim-board-1-1101",
        headers={"Authorization": f"Bearer {operator}"},
    ).json()
    assert listed["proven"]["rot_kind"] == "tpm"
    assert listed["status"] == "online"
