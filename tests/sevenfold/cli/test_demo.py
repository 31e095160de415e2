"""``sevenfold demo`` is the first thing a newcomer runs: it must work, fast."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.components import binary


def test_demo_shows_every_device_online() -> None:
    for program in ("mosquitto", "swtpm", "swtpm_setup", "tpm2-abrmd", "dbus-daemon"):
        binary(program)
    result = subprocess.run(
        [sys.executable, "-m", "sevenfold.cli", "demo", "--devices", "3", "--beats", "2", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["errors"] == {} and report["refused"] == {}
    assert [row["status"] for row in report["devices"]] == ["online"] * 3
    proven = [row["proven"]["rot_kind"] for row in report["devices"]]
    assert sorted(proven) == ["dice", "software", "tpm"], proven
    verdicts = {row["device_id"]: row["status"] for row in report["attestation"]}
    # Configurations nobody endorsed, and a software root of trust: passes with warnings.
    assert sorted(verdicts.values()) == ["warning"] * 3, verdicts
    assert all(row["attestation"]["holds_pass"] for row in report["devices"])
    # The boards' image went out through the release service, which endorsed its measurement.
    release = report["release"]
    assert (release["model"], release["version"], release["security_counter"]) == (
        "sim-board-1", "1.0.0", 1,
    )  # fmt: skip
    # Then the fleet updated itself: every board (the TPM one too) took 1.1.0 and confirmed
    # it, and reverted 1.2.0 (a crash on boot) and 1.3.0 (a failed health check).
    steps = {step["version"]: (step["installed"], step["boards"], step["outcome"])
             for step in report["rollout"]}  # fmt: skip
    assert steps == {
        "1.1.0": (3, 3, "confirmed"), "1.2.0": (3, 3, "reverted"), "1.3.0": (3, 3, "reverted"),
    }, report["rollout"]  # fmt: skip


def test_demo_cuts_off_the_board_with_a_tampered_image_until_an_update_heals_it() -> None:
    for program in ("mosquitto", "swtpm", "swtpm_setup", "tpm2-abrmd", "dbus-daemon"):
        binary(program)
    result = subprocess.run(
        [sys.executable, "-m", "sevenfold.cli", "demo", "--devices", "4", "--beats", "1", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["errors"] == {}
    ((tampered, why),) = report["refused"].items()
    assert "unendorsed-image" in why
    assert tampered not in {row["device_id"] for row in report["devices"]}
    standing = {row["device_id"]: row for row in report["attestation"]}[tampered]
    assert standing["status"] == "contraindicated" and not standing["holds_pass"]
    # Cut off from its application plane, not from its update service: it took the genuine
    # 1.1.0, passed its trial, and attests again.
    assert report["healed"] == [tampered]
    assert [step["boards"] for step in report["rollout"]] == [4, 4, 4], report["rollout"]


def test_demo_table_for_people() -> None:
    for program in ("mosquitto", "swtpm", "swtpm_setup", "tpm2-abrmd", "dbus-daemon"):
        binary(program)
    result = subprocess.run(
        [sys.executable, "-m", "sevenfold.cli", "demo", "--devices", "2", "--beats", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2/2 attested devices online" in result.stdout
    assert "rollout: 2 boards took 1.1.0 and confirmed it, and reverted 1.2.0" in result.stdout
    assert "tpm (proven)" in result.stdout and "dice (proven)" in result.stdout
