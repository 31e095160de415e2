"""A MicroPython board attests over MQTT against the real fleet server, attestation gate on.

The factory station provisions a board over its console (its root-of-trust
state, its DeviceID certificate from the manufacturer CA, the broker's
ports); the MicroPython device then boots from that state with the firmware
bundle: measures its image and configuration into its root of trust, answers
the challenge on the recovery listener with evidence, takes the fleet
certificate of its pass to the fleet listener, enrolls and heartbeats. The
image is the bundle's own ROMFS image, as it would sit in a board's flash; the
operator endorses its digest. A board whose image holds one file more is
refused (``unendorsed-image``) and never enrolls.

The board's root of trust is the software one, in a group whose policy admits
it: MicroPython's mbedTLS (3.6) cannot parse a DICE DeviceID certificate,
which is a CA certificate with a critical Name Constraints extension, so a
DICE board cannot present it to the recovery listener (the last test pins
that, so it is seen when it changes).

The device runs from that image outside its heap (``flash_launcher.py``), as
a board runs from its ROM partition: loaded from files, the unix port copies
all the bytecode into the heap, and the attesting stack then needs more than
128 KiB (160 KiB passes). mbedTLS allocates each TLS session in the same heap. It passes at
100 KiB and fails at 96 KiB (creating the TLS context), but at 104 KiB about one run
in five still failed to find 3 KB for the second TLS context on a loaded machine (the
heap's fragmentation varies), so HEAP leaves a quarter more.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from device_runtime.core.console import read_installed
from device_runtime.ports.cpython.storage import DirectoryStore
from device_runtime.ports.micropython.link import FLEET_CERTIFICATE
from firmware_images.micropython_bundle import romfs_image
from fleet_platform.pki import CertificateAuthority
from fleet_platform.server_config import ServerConfig
from sevenfold.cli.demo import HWMODEL, provision_over_consoles
from sevenfold.server import FleetServer
from tests.attestation_fixtures import GatedFleet, fleet, operator_api
from tests.device_runtime.ports.micropython.test_firmware_main import bundle

pytestmark = [pytest.mark.timeout(300), pytest.mark.xdist_group("fleet-server")]

__all__ = ["bundle", "fleet"]

HEAP = "128K"
LAUNCHER = Path(__file__).parents[2] / "flash_launcher.py"
MODULE = "device_runtime.ports.micropython.firmware_main"


def provisioned_board(
    server: FleetServer, config: ServerConfig, maker: CertificateAuthority, kind: str, image: bytes
) -> tuple[str, Path]:
    """A board of *kind* through the factory station, then configured for MicroPython to
    run *image*: (device id, its configuration file)."""
    ((directory, _),) = provision_over_consoles(
        config.state_dir, server.http_url, [kind], None, maker
    )
    record = read_installed(DirectoryStore(directory=directory))
    assert record is not None
    (directory / "deviceid.der").write_bytes(record["device-cert"])  # type: ignore[arg-type]
    (directory / "fleet-ca.der").write_bytes(record["fleet-ca"])  # type: ignore[arg-type]
    (directory / "flash.img").write_bytes(image)
    settings = {
        "device_id": record["device_id"],
        "host": record["broker_host"],
        "port": record["broker_port"],
        "recovery_port": record["recovery_port"],
        "ca": str(directory / "fleet-ca.der"),
        "deviceid_cert": str(directory / "deviceid.der"),
        "state_dir": str(directory),
        "rot": kind,
        "rot_dir": str(directory),
        "image": str(directory / "flash.img"),
        "hwmodel": HWMODEL,
        "swname": "sevenfold-mpy",
        "swversion": "1.0.0",
        "security_version": 0,
        "oemid": "025a7f",
        "dbgstat": 3,
        "timeout_ms": 30000,
    }
    path = directory / "device.json"
    path.write_text(json.dumps(settings))
    return str(record["device_id"]), path


def boot_device(config: Path, beats: int) -> tuple[subprocess.CompletedProcess[str], float]:
    """Boot the board of *config* from the flash image it measures; (outcome, seconds)."""
    image = json.loads(config.read_text())["image"]
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, str(LAUNCHER), image, HEAP, MODULE, str(config), str(beats)],
        cwd=config.parent,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    return result, time.monotonic() - started


def tampered_image(bundle: Path, tmp_path: Path) -> bytes:
    """The bundle's image with one file more: it still boots, but it is not what was endorsed."""
    tree = tmp_path / "tampered"
    shutil.copytree(bundle, tree)
    (tree / "implant.txt").write_bytes(b"not endorsed")
    return romfs_image(tree)


def admitted(api: httpx.Client, device_id: str, image: bytes) -> None:
    """The operator's part: *image* endorsed, the device in a group that admits software."""
    api.post(
        "/api/v1/endorsements",
        json={"hwmodel": HWMODEL, "digest": hashlib.sha256(image).hexdigest()},
    ).raise_for_status()
    api.put(
        "/api/v1/policies/lab", json={"allowed_roots": ["tpm", "dice", "software"]}
    ).raise_for_status()
    api.put(f"/api/v1/attestation/{device_id}/group", json={"group": "lab"}).raise_for_status()


def test_a_micropython_board_attests_enrolls_and_heartbeats(
    bundle: Path, fleet: GatedFleet
) -> None:
    server, config, maker = fleet
    assert server.registry is not None
    image = romfs_image(bundle)
    device_id, settings = provisioned_board(server, config, maker, "software", image)
    with operator_api(server, config) as api:
        admitted(api, device_id, image)
        result, seconds = boot_device(settings, beats=2)
        assert result.returncode == 0, result.stdout + result.stderr
        lines = result.stdout.splitlines()
        assert lines[0] == "boot 1", lines
        attested = lines[1].split()
        assert attested[:4] == ["attested", "warning", "ok", "in"], lines
        assert lines[2:6] == ["enrolled interval 1", "beat 1", "beat 2", "done"], lines
        standing = api.get(f"/api/v1/attestation/{device_id}").json()
    latest = standing["history"][0]
    assert latest["via_recovery"] is True
    assert standing["standing"]["holds_pass"] is True
    assert standing["standing"]["status"] == "warning"
    assert (settings.parent / FLEET_CERTIFICATE).read_bytes()[:1] == b"\x30"
    record = server.registry.get(device_id)
    assert record is not None
    assert (record.hwmodel, record.boot_count, record.last_seq) == (HWMODEL, 1, 2)
    print(f"MicroPython software board at {HEAP}: recovery handshake to fleet session"
          f" {attested[4]} ms, boot to two heartbeats {seconds:.1f} s")  # fmt: skip


def test_a_micropython_board_with_a_tampered_image_is_refused_and_never_enrolls(
    bundle: Path, fleet: GatedFleet, tmp_path: Path
) -> None:
    server, config, maker = fleet
    assert server.registry is not None
    image = romfs_image(bundle)
    tampered = tampered_image(bundle, tmp_path)
    device_id, settings = provisioned_board(server, config, maker, "software", tampered)
    with operator_api(server, config) as api:
        admitted(api, device_id, image)
        result, _ = boot_device(settings, beats=1)
        assert result.returncode != 0
        lines = result.stdout.splitlines()
        # Refused inside boot, which counted the boot but never returned it.
        assert lines[0] == "attested contraindicated unendorsed-image", lines
        assert lines[1].startswith("error contraindicated: unendorsed-image"), lines
        standing = api.get(f"/api/v1/attestation/{device_id}").json()["standing"]
    assert standing["status"] == "contraindicated" and not standing["holds_pass"]
    assert not (settings.parent / FLEET_CERTIFICATE).exists()
    assert server.registry.get(device_id) is None


def test_micropythons_mbedtls_refuses_a_dice_deviceid_certificate(
    bundle: Path, fleet: GatedFleet
) -> None:
    """Its critical Name Constraints (the DeviceID key may certify only its own Alias key)
    are an extension mbedTLS 3.6 does not parse: the board fails cleanly, before any TLS."""
    server, config, maker = fleet
    image = romfs_image(bundle)
    _, settings = provisioned_board(server, config, maker, "dice", image)
    result, _ = boot_device(settings, beats=1)
    assert result.returncode != 0
    assert result.stdout.splitlines()[0] == (
        "error transport: TLS credentials rejected: invalid cert"
    ), result.stdout + result.stderr
