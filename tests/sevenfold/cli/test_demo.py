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
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["errors"] == {}
    assert [row["status"] for row in report["devices"]] == ["online"] * 3
    proven = [row["proven"]["rot_kind"] for row in report["devices"]]
    assert sorted(proven) == ["dice", "software", "tpm"], proven


def test_demo_table_for_people() -> None:
    for program in ("mosquitto", "swtpm", "swtpm_setup", "tpm2-abrmd", "dbus-daemon"):
        binary(program)
    result = subprocess.run(
        [sys.executable, "-m", "sevenfold.cli", "demo", "--devices", "2", "--beats", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2/2 devices online" in result.stdout
    assert "tpm (proven)" in result.stdout and "dice (proven)" in result.stdout
