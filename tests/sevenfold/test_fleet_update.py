"""A simulated fleet updates itself: 1.0.0 → 1.1.0, and 1.2.0 and 1.3.0 revert by themselves.

Two DICE boards provisioned over their consoles, a real fleet server with its
managed Mosquitto, the attestation gate on and its TUF repository (an offline
2-of-2 root, the model's role, the release key), and the sensor app's real
images. Each release is published and endorsed as an operator would
(``sevenfold release publish``); each board boots from its A/B slots, attests,
heartbeats, then its update agent checks the repository over HTTP, installs
what the model's pointer names into the other slot and marks it pending. The
next boot tries it once: 1.1.0 passes its health check and is confirmed; 1.2.0
crashes on boot, 1.3.0 fails its health check, and the boot after each reverts
to 1.1.0 and says why. A reverted release is never installed again. The
server's update history holds every step the boards reported, and each revert
is a security event.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from device_runtime.core import protocol
from device_runtime.simulated_board import install_update_trust, run_board
from device_runtime.simulator import SimulatedDevice
from sevenfold.cli.demo import HWMODEL, provision_over_consoles, publish_release
from sevenfold.cli.release import endorse_release
from tests.attestation_fixtures import fleet, operator_api
from tests.firmware_fixtures import SampleFirmware
from update_service import release_publisher
from update_service.release_store import ReleaseStore

pytestmark = [pytest.mark.timeout(600), pytest.mark.xdist_group("fleet-server")]
__all__ = ["fleet"]


def test_a_fleet_updates_to_1_1_0_and_reverts_1_2_0_and_1_3_0_by_itself(
    fleet: Any, sample_firmware: SampleFirmware
) -> None:
    server, config, maker = fleet
    state: Path = config.state_dir
    boards = provision_over_consoles(state, server.http_url, ["dice", "dice"], None, maker)
    release_key = sample_firmware.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    publish_release(state, sample_firmware.images["1.0.0"], release_key)
    root = (ReleaseStore(state).repository_dir / "metadata" / "1.root.json").read_bytes()
    for directory, _ in boards:
        sample_firmware.install(directory, "1.0.0")
        install_update_trust(directory, root=root, repository_url=server.http_url + "/tuf")

    def publish(version: str) -> None:
        image = sample_firmware.images[version]
        published = release_publisher.publish(ReleaseStore(state), image, model=HWMODEL)
        assert endorse_release(published.as_json(), state, None)["ok"]

    def run() -> list[SimulatedDevice]:
        prefix = protocol.DEFAULT_PREFIX
        return [
            run_board(directory=directory, kind=kind, hwmodel=HWMODEL, beats=1, prefix=prefix)
            for directory, kind in boards
        ]

    def summary(devices: list[SimulatedDevice]) -> set[tuple[Any, ...]]:
        return {(d.firmware, d.slot, d.pending, d.error) for d in devices}

    # Up to date: nothing to install.
    assert summary(run()) == {("1.0.0", "A", None, None)}

    publish("1.1.0")
    assert summary(run()) == {("1.0.0", "A", "1.1.0", None)}
    updated = run()
    assert summary(updated) == {("1.1.0", "B", None, None)}
    assert all(not d.trial and d.health is None for d in updated)
    assert all("humidity" in d.readings[-1] for d in updated)  # 1.1.0's new reading

    publish("1.2.0")  # crashes on boot
    assert summary(run()) == {("1.1.0", "B", "1.2.0", None)}
    crashed = run()
    assert all(d.slot == "A" and d.firmware is None for d in crashed)
    assert all(d.error is not None and "crashed on boot" in d.error for d in crashed)
    reverted = run()
    assert summary(reverted) == {("1.1.0", "B", None, None)}
    assert {d.reverted for d in reverted} == {
        "slot A: its trial failed: it was not confirmed before the next reset (a crash, a"
        " watchdog reset or a power cut during its trial)"
    }
    # Still the pointer's release, but its trial failed here: it is not taken again.
    assert summary(run()) == {("1.1.0", "B", None, None)}

    publish("1.3.0")  # boots, fails its health check
    assert summary(run()) == {("1.1.0", "B", "1.3.0", None)}
    failed = run()
    assert all(d.slot == "A" and d.firmware == "1.3.0" for d in failed)
    assert all(d.error is not None and d.error.startswith("trial-failed: 1.3.0") for d in failed)
    reverted = run()
    assert summary(reverted) == {("1.1.0", "B", None, None)}
    assert {d.reverted for d in reverted} == {"slot A: its trial failed: its health check failed"}

    with operator_api(server, config) as api:
        for directory, _ in boards:
            answer = api.get(f"/api/v1/devices/{directory.name}/updates", params={"limit": 100})
            assert answer.status_code == 200, answer.text
            steps = [(e["state"], e["from_version"], e["to_version"])
                     for e in reversed(answer.json()["entries"])]  # fmt: skip
            assert steps == [
                ("checking", "1.0.0", "1.1.0"),
                ("downloading", "1.0.0", "1.1.0"),
                ("installed", "1.0.0", "1.1.0"),
                ("booted", "1.1.0", "1.1.0"),
                ("confirmed", "1.1.0", "1.1.0"),
                ("checking", "1.1.0", "1.2.0"),
                ("downloading", "1.1.0", "1.2.0"),
                ("installed", "1.1.0", "1.2.0"),
                ("reverted", "1.2.0", "1.1.0"),
                ("checking", "1.1.0", "1.3.0"),
                ("downloading", "1.1.0", "1.3.0"),
                ("installed", "1.1.0", "1.3.0"),
                ("reverted", "1.3.0", "1.1.0"),
            ]
        events = api.get("/api/v1/events", params={"limit": 1000}).json()
        for directory, _ in boards:
            mine = [e for e in events if e.get("device_id") == directory.name]
            assert sum("revert" in str(e).lower() for e in mine) == 2, mine
