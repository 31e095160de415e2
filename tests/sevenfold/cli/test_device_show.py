"""``sevenfold devices show ID`` against a real server: identity, status, trust, updates.

The device and its history are written straight into the running server's
stores with hostile text in every field a device chooses (the wire refuses
control characters, but rows stored some other way must still be shown
safely), so the command must show each as the characters it is.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner, Result

from sevenfold.cli.app import app
from sevenfold.server import FleetServer
from tests.sevenfold.cli.fleet_fixtures import running_fleet
from tests.sevenfold.cli.hostile_text import SHOWN, WIDE, assert_harmless, shown
from update_service.update_history import UpdateReport

runner = CliRunner()
DEVICE = "dev-show"
HOSTILE = list(SHOWN)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FleetServer]:
    for server in running_fleet(tmp_path_factory, "show"):
        assert server.registry is not None and server.update_history is not None
        now = datetime.now(UTC)
        server.registry.enroll(
            DEVICE,
            hwmodel=HOSTILE[0],
            swname="fw",
            swversion=HOSTILE[1],
            rot_claimed="software",
            boot_count=3,
            heartbeat_interval=3600,
            cert_fingerprint=None,
            now=now,
        )
        for seq, value in enumerate(HOSTILE, 1):
            server.update_history.record(
                UpdateReport(
                    device_id=DEVICE,
                    boot_count=3,
                    seq=seq,
                    state="failed" if seq % 2 else "downloading",
                    from_version="1.0.0",
                    to_version=value,
                    target=value,
                    done=None if seq % 2 else 10,
                    total=None if seq % 2 else 20,
                    reason=value,
                    at=now + timedelta(seconds=seq),
                )
            )
        yield server


def sevenfold(fleet: FleetServer, *args: str) -> Result:
    return runner.invoke(app, [*args, "--state", str(fleet.config.state_dir)], env=WIDE)


def test_show_gives_identity_status_trust_and_updates_as_text(fleet: FleetServer) -> None:
    result = sevenfold(fleet, "devices", "show", DEVICE)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert_harmless(out)
    assert DEVICE in out and " online " in out and "software (claimed)" in out
    assert "not attested" in out
    assert f"{shown(HOSTILE[0])} (claimed)" in out
    for value in HOSTILE:
        assert out.count(shown(value)) >= 3, (value, out)  # target, to version, reason
    assert "10/20 bytes" in out
    assert f"last {len(HOSTILE)} update reports" in out


def test_show_limits_the_history_and_says_there_is_more(fleet: FleetServer) -> None:
    result = sevenfold(fleet, "devices", "show", DEVICE, "--limit", "2")
    assert result.exit_code == 0, result.output
    assert "last 2 update reports (older ones:" in result.stdout


def test_show_json_has_the_device_and_its_updates(fleet: FleetServer) -> None:
    result = sevenfold(fleet, "devices", "show", DEVICE, "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["device"]["device_id"] == DEVICE
    assert document["device"]["hwmodel"] == HOSTILE[0]
    entries = document["updates"]["entries"]
    assert [entry["reason"] for entry in entries] == list(reversed(HOSTILE))
    assert "\\u001b" in result.stdout, "JSON escapes control characters"


def test_an_unknown_device_is_one_error_line(fleet: FleetServer) -> None:
    result = sevenfold(fleet, "devices", "show", "no-such-device")
    assert result.exit_code == 2
    assert "HTTP 404" in result.output and "Traceback" not in result.output
