"""`sevenfold attest`, `policy` and `endorse` against a running server, as operators type them."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fleet_platform.server_config import RuntimeInfo
from sevenfold.cli.app import app
from sevenfold.server import FleetServer
from tests.sevenfold.cli.fleet_fixtures import running_fleet

pytestmark = pytest.mark.timeout(120)
runner = CliRunner()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FleetServer]:
    yield from running_fleet(tmp_path_factory, "attest-cli")


def run(fleet: FleetServer, *args: str) -> tuple[int, str]:
    result = runner.invoke(
        app, [*args, "--state", str(fleet.config.state_dir)], env={"COLUMNS": "100"}
    )
    return result.exit_code, result.output


def test_policies_are_shown_and_set_by_group(fleet: FleetServer) -> None:
    code, out = run(fleet, "policy", "show", "--json")
    assert code == 0, out
    assert json.loads(out)["default"]["allowed_roots"] == ["dice", "tpm"]
    code, out = run(
        fleet, "policy", "set", "--group", "lab", "--allow-roots", "tpm,dice,software",
        "--certificate-hours", "8", "--json",
    )  # fmt: skip
    assert code == 0, out
    assert json.loads(out)["certificate_hours"] == 8
    code, out = run(fleet, "policy", "show", "--group", "lab")
    assert code == 0 and "software" in out and "8" in out, out


def test_a_bad_policy_is_one_line_and_changes_nothing(fleet: FleetServer) -> None:
    code, out = run(fleet, "policy", "set", "--group", "lab2", "--allow-roots", "hsm")
    assert code != 0 and "unknown kinds hsm" in out and "Traceback" not in out, out
    code, out = run(fleet, "policy", "show", "--json")
    assert "lab2" not in json.loads(out)


def test_endorsements_are_added_by_digest_or_file_listed_and_withdrawn(
    fleet: FleetServer, tmp_path: Path
) -> None:
    image = tmp_path / "app.bin"
    image.write_bytes(b"firmware" * 1000)
    code, out = run(fleet, "endorse", "add", "--hwmodel", "board-x", "--image", str(image))
    assert code == 0 and "endorsed image" in out, out
    code, out = run(
        fleet, "endorse", "add", "--hwmodel", "board-x",
        "--digest", hashlib.sha256(image.read_bytes()).hexdigest(),
    )  # fmt: skip
    assert code == 0 and "already endorsed" in out, out
    code, out = run(fleet, "endorse", "list", "--hwmodel", "board-x", "--json")
    (listed,) = json.loads(out)
    assert listed["digest"] == hashlib.sha256(image.read_bytes()).hexdigest()
    code, out = run(fleet, "endorse", "withdraw", str(listed["id"]))
    assert code == 0, out
    code, out = run(fleet, "endorse", "list", "--hwmodel", "board-x", "--json")
    assert json.loads(out) == []


def test_a_signed_image_is_endorsed_by_its_image_hash_not_its_file_hash(
    fleet: FleetServer, tmp_path: Path
) -> None:
    """What a first stage measures is the SHA256 TLV's region, not the file with its
    signature (and slot padding) after it: endorsing the file's hash would endorse nothing."""
    from cryptography.hazmat.primitives.asymmetric import ec

    from device_runtime.core import signed_image
    from device_runtime.image_signer import sign_image

    key = ec.generate_private_key(ec.SECP256R1())
    image = tmp_path / "app.img"
    image.write_bytes(sign_image(b"app" * 500, key=key, version="2.0.1", security_counter=3))
    code, out = run(fleet, "endorse", "add", "--hwmodel", "board-y", "--image", str(image))
    assert code == 0, out
    code, out = run(fleet, "endorse", "list", "--hwmodel", "board-y", "--json")
    (listed,) = json.loads(out)
    expected = signed_image.inspect(image.open("rb").read).digest.hex()
    assert listed["digest"] == expected != hashlib.sha256(image.read_bytes()).hexdigest()
    damaged = tmp_path / "damaged.img"
    damaged.write_bytes(image.read_bytes()[:600])
    code, out = run(fleet, "endorse", "add", "--hwmodel", "board-y", "--image", str(damaged))
    assert code != 0 and "truncated" in out and "Traceback" not in out, out


@pytest.mark.parametrize(
    "args",
    [
        ("endorse", "add", "--hwmodel", "b", "--digest", "xyz"),
        ("endorse", "add", "--hwmodel", "b"),
        ("endorse", "add", "--hwmodel", "b", "--image", "/nonexistent/image.bin"),
        ("endorse", "withdraw", "999999"),
        ("attest", "quarantine", "no-such-device"),
        ("attest", "status", "--device", "no-such-device"),
        ("attest", "now", "no-such-device"),
        ("attest", "group", "no-such-device", "Bad Group"),
    ],
)
def test_operator_mistakes_are_one_line_without_a_traceback(
    fleet: FleetServer, args: tuple[str, ...]
) -> None:
    code, out = run(fleet, *args)
    assert code != 0, out
    assert "Traceback" not in out
    assert len([line for line in out.splitlines() if line.strip()]) <= 3, out


def test_status_lists_nobody_on_a_new_fleet(fleet: FleetServer) -> None:
    code, out = run(fleet, "attest", "status", "--json")
    assert code == 0 and json.loads(out) == [], out


def test_simulate_explains_that_a_gated_server_needs_attesting_devices(tmp_path: Path) -> None:
    RuntimeInfo(
        http_url="http://127.0.0.1:1", broker_host="127.0.0.1", broker_port=1,
        ca_path=str(tmp_path / "ca.pem"), prefix="sevenfold", pid=1, attestation_gate=True,
    ).write(tmp_path)  # fmt: skip
    result = runner.invoke(app, ["simulate", "--state", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert "--no-attestation-gate" in result.output and "Traceback" not in result.output
