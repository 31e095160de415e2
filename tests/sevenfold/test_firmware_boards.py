"""Boards really run the sample firmware: each release as docs/firmware.md says, end to end.

A DICE board provisioned over its console by the factory station, a real fleet
server with its managed Mosquitto and the attestation gate on, and the sensor
app's images as the build makes them: the board's first stage verifies the
image in its slot, measures it (its Alias key follows the image), boots the
application and runs its health check; then it attests with the image's real
hash, enrolls and heartbeats while the application samples. 1.0.0 and 1.1.0
report readings, 1.2.0 crashes on boot (the board reports it and never talks to
the server), 1.3.0 boots and fails its health check (the outcome says why, and
the board process exits non-zero). An image signed by a key the board does not
trust never runs and never reaches the server; one signed by the key it trusts
runs in a compartment that holds nothing of the board's.
"""

from __future__ import annotations

import json
import subprocess
import sys
from io import BytesIO
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from device_runtime.core import protocol
from device_runtime.core.signed_image import verify
from device_runtime.image_signer import public_point, sign_image
from device_runtime.ports.cpython.crypto import verify_ecdsa_der
from device_runtime.simulated_board import install_firmware, run_board
from sevenfold.cli.demo import HWMODEL, provision_over_consoles
from tests.attestation_fixtures import fleet, operator_api
from tests.device_runtime import escaping_application
from tests.firmware_fixtures import SampleFirmware

pytestmark = [pytest.mark.timeout(240), pytest.mark.xdist_group("fleet-server")]

__all__ = ["fleet"]


def test_each_release_runs_on_a_board_as_it_should(
    fleet: Any, sample_firmware: SampleFirmware
) -> None:
    server, config, maker = fleet
    ((directory, kind),) = provision_over_consoles(
        config.state_dir, server.http_url, ["dice"], None, maker
    )
    device_id = directory.name
    with operator_api(server, config) as api:
        for version in sample_firmware.images:
            digest = sample_firmware.image_hash(version).hex()
            endorsed = api.post("/api/v1/endorsements", json={"hwmodel": HWMODEL, "digest": digest})
            assert endorsed.status_code == 201, endorsed.text

        def boot(version: str, beats: int = 2) -> Any:
            sample_firmware.install(directory, version)
            return run_board(
                directory=directory, kind=kind, hwmodel=HWMODEL, beats=beats,
                prefix=protocol.DEFAULT_PREFIX,
            )  # fmt: skip

        first = boot("1.0.0")
        assert (first.error, first.health, first.firmware) == (None, None, "1.0.0")
        assert first.attested and first.beats == 2
        assert len(first.readings) == 2 and all(set(r) == {"temperature"} for r in first.readings)
        standing = api.get(f"/api/v1/attestation/{device_id}").json()["standing"]
        assert standing["holds_pass"] and standing["swversion"] == "1.0.0"

        second = boot("1.1.0")
        assert (second.error, second.health, second.firmware) == (None, None, "1.1.0")
        assert second.attested and second.beats == 2
        assert all(set(r) == {"temperature", "humidity"} for r in second.readings)
        standing = api.get(f"/api/v1/attestation/{device_id}").json()["standing"]
        assert standing["holds_pass"] and standing["swversion"] == "1.1.0"
        listed = api.get(f"/api/v1/devices/{device_id}").json()
        assert listed["swversion"] == "1.1.0"

        crashed = boot("1.2.0")
        assert crashed.error is not None
        assert crashed.error.startswith(
            "application: firmware 1.2.0 crashed on boot: ZeroDivisionError"
        )
        assert crashed.firmware is None and not crashed.attested
        assert crashed.beats == 0 and crashed.readings == []
        history = api.get(f"/api/v1/attestation/{device_id}").json()["history"]
        assert len(history) == 2  # the crashed boot never attested

        # 1.3.0 as the board's own process runs it: the outcome line and the exit status.
        sample_firmware.install(directory, "1.3.0")
        run = subprocess.run(
            [sys.executable, "-m", "device_runtime.simulated_board", "--dir", str(directory),
             "--kind", kind, "--hwmodel", HWMODEL, "--beats", "1"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert run.returncode == 1, run.stdout + run.stderr[-3000:]
        outcome = json.loads(run.stdout.splitlines()[-1])
        assert (outcome["error"], outcome["firmware"], outcome["beats"]) == (None, "1.3.0", 1)
        assert outcome["health"].startswith("temperature reads -2")
        assert "outside the sensor's rated range" in outcome["health"]
        assert outcome["readings"][0]["temperature"] < -4000
        # It booted and is reachable (an update agent can revert it): it attested and beat.
        assert outcome["attested"] is True
        standing = api.get(f"/api/v1/attestation/{device_id}").json()["standing"]
        assert standing["swversion"] == "1.3.0"


def test_an_image_the_board_does_not_trust_never_runs(
    fleet: Any, sample_firmware: SampleFirmware
) -> None:
    server, config, maker = fleet
    ((directory, kind),) = provision_over_consoles(
        config.state_dir, server.http_url, ["dice"], None, maker
    )
    install_firmware(
        directory,
        image=sample_firmware.images["1.0.0"],
        image_key=ec.generate_private_key(ec.SECP256R1()).public_key(),
    )
    device = run_board(
        directory=directory, kind=kind, hwmodel=HWMODEL, beats=1, prefix=protocol.DEFAULT_PREFIX
    )
    assert device.error is not None
    assert device.error.startswith(
        "bad-image: no slot holds an image that may boot: slot A: its image was refused:"
        " signed by another key: the KEYHASH at offset"
    )
    assert device.firmware is None and device.boot_count == 0 and not device.attested
    with operator_api(server, config) as api:
        # The server never heard of it: no challenge, no appraisal, no standing.
        assert api.get(f"/api/v1/attestation/{directory.name}").status_code == 404


def test_an_application_signed_with_the_release_key_cannot_reach_the_boards_secrets(
    fleet: Any, sample_firmware: SampleFirmware
) -> None:
    """A malicious release, signed with the key the board trusts and endorsed, so it boots,
    attests and samples: everything it tries against the board (its stack, its heap, the UDS
    at its exact path, the board process's environment) comes back empty, as its readings
    say. On a board whose application shared its process, it read the UDS and the DICE root
    of trust object off the stack."""
    server, config, maker = fleet
    ((directory, kind),) = provision_over_consoles(
        config.state_dir, server.http_url, ["dice"], None, maker
    )
    image = sign_image(escaping_application.payload(directory / "uds" / "dice-uds"),
                       key=sample_firmware.key, version="6.6.6", security_counter=9)  # fmt: skip
    install_firmware(directory, image=image, image_key=sample_firmware.key.public_key())
    digest = verify(BytesIO(image).read, public_point(sample_firmware.key.public_key()),
                    verify_ecdsa_der, len(image)).image_hash.hex()  # fmt: skip
    with operator_api(server, config) as api:
        endorsed = api.post("/api/v1/endorsements", json={"hwmodel": HWMODEL, "digest": digest})
        assert endorsed.status_code == 201, endorsed.text
    device = run_board(
        directory=directory, kind=kind, hwmodel=HWMODEL, beats=1, prefix=protocol.DEFAULT_PREFIX
    )
    assert (device.error, device.health, device.firmware) == (None, None, "6.6.6")
    assert device.attested and len(device.readings) == 1
    escaping_application.assert_confined(device.readings[0])
