"""A hostile attested board floods its attestation plane; a good board still attests.

The attestation plane is the one a certificate holder keeps whatever its
standing, so it is where a hostile board pushes hardest: garbage, challenge
requests beyond the outstanding limit, evidence that is no token, a genuine
token over a nonce never issued (replayed), a forged quote, requests on the
wrong plane, another board's topic. While at least 20,000 of those arrive for 8 s as fast as
its connection allows, a second board boots, attests through the recovery
listener, earns its fleet certificate and heartbeats. Asserted: the good board
is served within bounds, the hostile one's events and challenges stay bounded,
nothing in the server errs or grows without bound.
"""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from attestation_server.tables import AttestationChallenge
from device_runtime.core import protocol
from device_runtime.simulated_board import run_board
from sevenfold.cli.demo import HWMODEL, provision_over_consoles
from tests.attestation_fixtures import fleet, operator_api
from tests.firmware_fixtures import SampleFirmware

pytestmark = [pytest.mark.timeout(240), pytest.mark.xdist_group("fleet-server")]

__all__ = ["fleet"]

MESSAGES = 20_000
FLOOD_S = 8.0
GOOD_BOARD_S = 20.0
"""A good board's whole boot (recovery connect, challenge, evidence, certificate, fleet connect,
enroll, two heartbeats at the fixture's 1 s interval) must finish within this under the flood."""


def test_a_good_board_attests_through_a_flood_of_its_attestation_plane(
    fleet: Any, sample_firmware: SampleFirmware
) -> None:
    server, config, maker = fleet
    (hostile_dir, kind), (good_dir, _) = provision_over_consoles(
        config.state_dir, server.http_url, ["dice", "dice"], None, maker
    )
    for board in (hostile_dir, good_dir):
        sample_firmware.install(board, "1.0.0")
    hostile_id, good_id = hostile_dir.name, good_dir.name
    with operator_api(server, config) as api:
        api.post(
            "/api/v1/endorsements",
            json={"hwmodel": HWMODEL, "digest": sample_firmware.image_hash("1.0.0").hex()},
        ).raise_for_status()
        hostile = run_board(
            directory=hostile_dir, kind=kind, hwmodel=HWMODEL, beats=1,
            prefix=protocol.DEFAULT_PREFIX,
        )  # fmt: skip
        assert hostile.error is None and hostile.attested, "it holds a fleet certificate"

        assert server.broker is not None
        flood = subprocess.Popen(
            [sys.executable, "-m", "bench.attestation_flood_device", str(hostile_dir), HWMODEL,
             server.broker.host, str(server.broker.port), str(server.broker.ca_path),
             str(MESSAGES), str(FLOOD_S)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            time.sleep(0.5)  # the flood is under way before the good board boots
            started = time.monotonic()
            good = run_board(
                directory=good_dir, kind=kind, hwmodel=HWMODEL, beats=2,
                prefix=protocol.DEFAULT_PREFIX,
            )  # fmt: skip
            took = time.monotonic() - started
            still_flooding = flood.poll() is None
        finally:
            output, errors = flood.communicate(timeout=120)
        assert flood.returncode == 0, errors
        assert int(output.split()[0]) >= MESSAGES
        print(f"good board attested and beat twice in {took:.2f} s during a flood of "
              f"{output.strip()} (messages, s); flood still running: {still_flooding}")  # fmt: skip
        assert still_flooding, "the good board booted while the flood was still arriving"
        assert good.error is None, good.error
        assert good.attested and good.beats == 2
        assert took < GOOD_BOARD_S, f"the good board took {took:.2f} s"

        standing = api.get(f"/api/v1/attestation/{good_id}").json()["standing"]
        assert standing["holds_pass"] is True
        events = api.get("/api/v1/events", params={"limit": 1000}).json()
        mine = [e for e in events if e["device_id"] == hostile_id]
        assert 0 < len(mine) <= 60, f"{len(mine)} events recorded for the hostile board"
        history = api.get(f"/api/v1/attestation/{hostile_id}").json()["history"]
        assert len(history) <= 60, f"{len(history)} results recorded for the hostile board"
        print(f"hostile board: {len(mine)} events, {len(history)} results recorded")

        assert httpx.get(server.http_url + "/healthz", timeout=10).status_code == 200
    assert server.metrics.total("sevenfold_gateway_internal_errors_total") == 0
    assert server.database is not None
    with server.database.transaction("count the hostile board's challenges") as tx:
        mine_only = AttestationChallenge.device_id == hostile_id
        outstanding = tx.execute(
            select(func.count()).select_from(AttestationChallenge).where(mine_only)
        ).scalar_one()
    assert outstanding <= 4, f"{outstanding} challenges outstanding for one board"
