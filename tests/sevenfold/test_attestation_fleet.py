"""Attestation end to end: a provisioned board earns its broker access, and loses it.

A real fleet server with its managed Mosquitto (fleet and recovery listeners),
a DICE board provisioned over its console by the factory station, the board's
own process logic attesting through the recovery listener with its DeviceID
certificate, then enrolling and heartbeating with the 24-hour fleet
certificate it was given. Then the operator withdraws the image's endorsement
and the device, attesting again, is contraindicated: the broker stops
delivering its application messages within 10 s on the same connection,
while its attestation topics still answer.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import insert

from device_runtime.core import protocol
from device_runtime.core.console import read_installed
from device_runtime.core.errors import TransportError
from device_runtime.ports.cpython.storage import DirectoryStore
from device_runtime.ports.cpython.tls_credential import key_file
from device_runtime.ports.cpython.transport import MqttTransport
from device_runtime.simulated_board import (
    board_attestor,
    configuration_digest,
    run_board,
)
from device_runtime.simulator import FLEET_CERT_FILE, BootedImage, open_root_of_trust
from sevenfold.cli.demo import HWMODEL, provision_over_consoles
from sevenfold.server import FleetServer
from tests.attestation_fixtures import fleet, operator_api
from tests.firmware_fixtures import SampleFirmware

pytestmark = [pytest.mark.timeout(240), pytest.mark.xdist_group("fleet-server")]

__all__ = ["fleet"]

CUT_OFF_S = 10.0


class RawDevice:
    """The board's own credentials driven by hand: requests on either plane, answers awaited."""

    def __init__(
        self, *, directory: Path, server: FleetServer, device_id: str, image: BootedImage
    ) -> None:
        assert server.broker is not None
        self.device_id = device_id
        # The board's own Alias key: derived from the image its first stage booted.
        rot = open_root_of_trust(kind="dice", directory=directory, hwmodel=HWMODEL, image=image)
        self.rot = rot
        with key_file(rot.evidence_key()) as key:
            self.transport = MqttTransport(
                host=server.broker.host,
                port=server.broker.port,
                client_id=device_id,
                ca_path=server.broker.ca_path,
                cert_path=directory / FLEET_CERT_FILE,
                key_path=key,
            )
        self.transport.connect()
        for leaf in ("down", "att/down"):
            self.transport.subscribe(protocol.topic(protocol.DEFAULT_PREFIX, device_id, leaf))
        self.counter = 0

    def ask(self, kind: str, body: dict[str, Any], wait_s: float = 2.0) -> dict[str, Any] | None:
        self.counter += 1
        correlation = self.counter.to_bytes(8, "big")
        leaf = "att/up" if protocol.PLANES[kind] == protocol.ATTESTATION_PLANE else "up"
        self.transport.publish(
            protocol.topic(protocol.DEFAULT_PREFIX, self.device_id, leaf),
            protocol.encode(kind, correlation, body),
        )
        deadline = time.monotonic() + wait_s
        while (left := deadline - time.monotonic()) > 0:
            received = self.transport.poll(int(left * 1000))
            if received is None:
                continue
            envelope = protocol.decode(received[1], protocol.MAX_DOWN_MESSAGE)
            if envelope.correlation == correlation:
                return {"kind": envelope.kind, **envelope.body}
        return None


def test_a_board_attests_earns_its_topics_and_loses_them_when_its_image_is_withdrawn(
    fleet: Any, sample_firmware: SampleFirmware
) -> None:
    server, config, maker = fleet
    ((directory, kind),) = provision_over_consoles(
        config.state_dir, server.http_url, ["dice"], None, maker
    )
    sample_firmware.install(directory, "1.0.0")
    device_id = directory.name
    with operator_api(server, config) as api:
        endorsed = api.post(
            "/api/v1/endorsements",
            json={"hwmodel": HWMODEL, "digest": sample_firmware.image_hash("1.0.0").hex()},
        )
        assert endorsed.status_code == 201, endorsed.text

        device = run_board(
            directory=directory, kind=kind, hwmodel=HWMODEL, beats=2,
            prefix=protocol.DEFAULT_PREFIX,
        )  # fmt: skip
        assert device.error is None
        assert device.attested and device.beats == 2

        standing = api.get(f"/api/v1/attestation/{device_id}").json()
        latest = standing["history"][0]
        assert latest["via_recovery"] is True  # it had only its DeviceID certificate
        assert standing["standing"]["holds_pass"] is True
        # No one endorsed the configuration: a warning, not a refusal.
        assert standing["standing"]["status"] == "warning"
        expires = datetime.fromisoformat(standing["standing"]["certificate_expires"])
        assert timedelta(hours=23) < expires - datetime.now(UTC) <= timedelta(hours=24)
        listed = {row["device_id"]: row for row in api.get("/api/v1/devices").json()}
        assert listed[device_id]["attestation"]["status"] == "warning"

        image = sample_firmware.booted["1.0.0"]
        raw = RawDevice(directory=directory, server=server, device_id=device_id, image=image)
        try:
            record = read_installed(DirectoryStore(directory=directory))
            assert record is not None
            seq = 100
            answer = raw.ask("heartbeat", {"seq": seq, "uptime": 1, "boot_count": 1})
            assert answer is not None and answer["kind"] == "heartbeat-ack"

            assert api.delete(f"/api/v1/endorsements/{endorsed.json()['endorsement']['id']}")
            attestor = board_attestor(
                rot=raw.rot,
                device_id=device_id,
                deviceid_certificate=record["device-cert"],  # type: ignore[arg-type]
                hwmodel=HWMODEL,
                image=image,
                config_digest=configuration_digest(record, protocol.DEFAULT_PREFIX),
            )
            issued = raw.ask("challenge", {})
            assert issued is not None and issued["kind"] == "challenge-issued"
            verdict = raw.ask("evidence", attestor.body(issued["nonce"], 1, 2), wait_s=10)
            refused_at = time.monotonic()
            assert verdict is not None, "no answer to the evidence"
            assert verdict["status"] == "contraindicated"
            assert verdict["code"] == "unendorsed-image"
            assert "certificate" not in verdict

            cut_off_after = None
            while time.monotonic() - refused_at < CUT_OFF_S + 5:
                seq += 1
                beat = raw.ask("heartbeat", {"seq": seq, "uptime": 2, "boot_count": 1}, 1.0)
                if beat is None:
                    cut_off_after = time.monotonic() - refused_at
                    break
            assert cut_off_after is not None, "the broker kept delivering its heartbeats"
            assert cut_off_after < CUT_OFF_S
            # The figure docs/attestation.md quotes (the unanswered heartbeat's own 1 s wait
            # included): pytest -s prints it.
            print(f"cut off {cut_off_after:.2f} s after the contraindicated answer")
            # The attestation plane still answers on the same connection.
            again = raw.ask("challenge", {})
            assert again is not None and again["kind"] == "challenge-issued"
        finally:
            raw.transport.close()

        events = api.get("/api/v1/events", params={"limit": 50}).json()
        security = [e for e in events if e["kind"] == "security" and e["device_id"] == device_id]
        assert any(e["code"] == "unendorsed-image" for e in security), security
        standing = api.get(f"/api/v1/attestation/{device_id}").json()["standing"]
        assert standing["holds_pass"] is False and standing["status"] == "contraindicated"


def test_a_tampered_image_never_gets_a_certificate(
    fleet: Any, sample_firmware: SampleFirmware
) -> None:
    """An application an attacker changed, signed with the release key (a compromised build
    server): the first stage boots it, attestation sees its hash is no endorsed image's."""
    server, config, maker = fleet
    ((directory, kind),) = provision_over_consoles(
        config.state_dir, server.http_url, ["dice"], None, maker
    )
    sample_firmware.install(directory, "tampered")
    with operator_api(server, config) as api:
        api.post(
            "/api/v1/endorsements",
            json={"hwmodel": HWMODEL, "digest": sample_firmware.image_hash("1.0.0").hex()},
        ).raise_for_status()
        device = run_board(
            directory=directory, kind=kind, hwmodel=HWMODEL, beats=1,
            prefix=protocol.DEFAULT_PREFIX,
        )  # fmt: skip
        assert device.firmware == "1.0.0"  # it booted: the signature is the release key's
        assert device.error is not None and "unendorsed-image" in device.error
        assert not device.attested and device.beats == 0
        assert not (directory / FLEET_CERT_FILE).exists()
        standing = api.get(f"/api/v1/attestation/{directory.name}").json()["standing"]
        assert standing["status"] == "contraindicated" and not standing["holds_pass"]


def test_software_boards_are_refused_unless_their_group_allows_them(
    fleet: Any, sample_firmware: SampleFirmware
) -> None:
    server, config, maker = fleet
    ((directory, kind),) = provision_over_consoles(
        config.state_dir, server.http_url, ["software"], None, maker
    )
    sample_firmware.install(directory, "1.0.0")
    with operator_api(server, config) as api:
        api.post(
            "/api/v1/endorsements",
            json={"hwmodel": HWMODEL, "digest": sample_firmware.image_hash("1.0.0").hex()},
        ).raise_for_status()
        refused = run_board(
            directory=directory, kind=kind, hwmodel=HWMODEL, beats=1,
            prefix=protocol.DEFAULT_PREFIX,
        )  # fmt: skip
        assert refused.error is not None and "rot-not-allowed" in refused.error
        api.put(
            "/api/v1/policies/lab", json={"allowed_roots": ["tpm", "dice", "software"]}
        ).raise_for_status()
        api.put(f"/api/v1/attestation/{directory.name}/group", json={"group": "lab"})
        admitted = run_board(
            directory=directory, kind=kind, hwmodel=HWMODEL, beats=1,
            prefix=protocol.DEFAULT_PREFIX,
        )  # fmt: skip
        assert admitted.error is None and admitted.beats == 1
        standing = api.get(f"/api/v1/attestation/{directory.name}").json()["standing"]
        assert standing["status"] == "warning" and standing["group"] == "lab"


def test_a_quarantined_device_is_cut_off_until_released(
    fleet: Any, sample_firmware: SampleFirmware
) -> None:
    server, config, maker = fleet
    ((directory, kind),) = provision_over_consoles(
        config.state_dir, server.http_url, ["dice"], None, maker
    )
    sample_firmware.install(directory, "1.0.0")
    with operator_api(server, config) as api:
        api.post(
            "/api/v1/endorsements",
            json={"hwmodel": HWMODEL, "digest": sample_firmware.image_hash("1.0.0").hex()},
        ).raise_for_status()
        assert run_board(
            directory=directory, kind=kind, hwmodel=HWMODEL, beats=1,
            prefix=protocol.DEFAULT_PREFIX,
        ).error is None  # fmt: skip
        device_id = directory.name
        quarantined = api.post(
            f"/api/v1/attestation/{device_id}/quarantine", json={"reason": "lost in transit"}
        ).json()
        assert quarantined["quarantined_at"] and not quarantined["holds_pass"]
        raw = RawDevice(
            directory=directory, server=server, device_id=device_id,
            image=sample_firmware.booted["1.0.0"],
        )  # fmt: skip
        try:
            assert raw.ask("heartbeat", {"seq": 50, "uptime": 1, "boot_count": 2}, 1.5) is None
            assert raw.ask("challenge", {}) is not None
        finally:
            raw.transport.close()
        refused = run_board(
            directory=directory, kind=kind, hwmodel=HWMODEL, beats=1,
            prefix=protocol.DEFAULT_PREFIX,
        )  # fmt: skip
        assert refused.error is not None and "quarantined" in refused.error
        api.post(f"/api/v1/attestation/{device_id}/release").raise_for_status()
        released = run_board(
            directory=directory, kind=kind, hwmodel=HWMODEL, beats=1,
            prefix=protocol.DEFAULT_PREFIX,
        )  # fmt: skip
        assert released.error is None and released.beats == 1


def test_a_provisioning_certificate_opens_nothing_under_the_gate(fleet: Any) -> None:
    """The fleet certificate provisioning returns (for fleets without the gate) comes from
    the fleet CA; the gated fleet listener trusts only the attestation CA, so it is refused
    at the handshake, whatever passes its device holds."""
    server, config, maker = fleet
    ((directory, _),) = provision_over_consoles(
        config.state_dir, server.http_url, ["software"], None, maker
    )
    record = read_installed(DirectoryStore(directory=directory))
    assert record is not None
    certificate = directory / "provisioned.crt"
    certificate.write_bytes(
        x509.load_der_x509_certificate(record["fleet-cert"]).public_bytes(  # type: ignore[arg-type]
            serialization.Encoding.PEM
        )
    )
    rot = open_root_of_trust(kind="software", directory=directory, hwmodel=HWMODEL)
    assert server.broker is not None
    with key_file(rot.identity_key()) as key:
        transport = MqttTransport(
            host=server.broker.host, port=server.broker.port, client_id=directory.name,
            ca_path=server.broker.ca_path, cert_path=certificate, key_path=key,
        )  # fmt: skip
    with pytest.raises(TransportError):
        transport.connect()
    transport.close()


def test_a_restarted_server_gives_its_broker_the_passes_already_held(
    fleet: Any, tmp_path: Path, sample_firmware: SampleFirmware
) -> None:
    server, config, maker = fleet
    ((directory, kind),) = provision_over_consoles(
        config.state_dir, server.http_url, ["dice"], None, maker
    )
    sample_firmware.install(directory, "1.0.0")
    with operator_api(server, config) as api:
        api.post(
            "/api/v1/endorsements",
            json={"hwmodel": HWMODEL, "digest": sample_firmware.image_hash("1.0.0").hex()},
        ).raise_for_status()
    device = run_board(
        directory=directory, kind=kind, hwmodel=HWMODEL, beats=1,
        prefix=protocol.DEFAULT_PREFIX,
    )  # fmt: skip
    assert device.error is None and device.attested
    server.stop()  # killed and started again: the pass lives in the database
    with FleetServer(config=config) as again:
        assert again.broker is not None
        assert again.broker.granted == (directory.name,)


def test_text_from_devices_in_verdicts_is_shown_as_text(fleet: Any) -> None:
    """A reason quotes what a device claimed; the operator's table prints it, never styles it."""
    from typer.testing import CliRunner

    from attestation_server.tables import DeviceTrust
    from sevenfold.cli.app import app

    server, config, _ = fleet
    hostile = "[red]x[/red] <script>alert(1)</script> \x1b[2J"
    assert server.database is not None
    with server.database.transaction("a hostile standing") as tx:
        tx.execute(
            insert(DeviceTrust).values(
                device_id="dev-h", group_name="default", status="contraindicated",
                code="version-mismatch", reason=hostile,
            )
        )  # fmt: skip
    result = CliRunner().invoke(
        app, ["attest", "status", "--state", str(config.state_dir)], env={"COLUMNS": "300"}
    )
    assert result.exit_code == 0, result.output
    assert "[red]x[/red] <script>alert(1)</script>" in result.output
    assert "\x1b" not in result.output
