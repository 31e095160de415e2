"""The release workflow as an operator types it: offline root keys, ceremony, models, publish.

A running fleet server (with attestation, so the endorsement lands) and one
that cannot be reached (the release is published, the endorsement is retried
by publishing again).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from sevenfold.server import FleetServer
from tests.components import free_port
from tests.sevenfold.cli.fleet_fixtures import running_fleet
from tests.sevenfold.cli.typed_commands import ok, sevenfold

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FleetServer]:
    yield from running_fleet(tmp_path_factory, "release-cli")


def test_an_operator_creates_keys_publishes_rotates_and_is_refused_with_reasons(
    fleet: FleetServer, tmp_path: Path
) -> None:
    state = str(fleet.config.state_dir)
    offline = tmp_path / "offline"
    offline.mkdir()
    for n in (1, 2, 3):
        assert "created root key" in ok("keys", "create-root-key", offline / f"root-{n}.pem")
    assert (offline / "root-1.pem").stat().st_mode & 0o777 == 0o600
    code, out = sevenfold("keys", "create-root-key", offline / "root-1.pem")
    assert code == 2 and "never overwritten" in out
    root = tmp_path / "root.json"
    keys = [a for n in (1, 2, 3) for a in ("--root-key", offline / f"root-{n}.pub.pem")]
    out = ok("keys", "init", "--state", state, "--threshold", "2", "--out", root, *keys)
    assert "sign it with 2 of its 3 root keys" in out
    code, out = sevenfold("keys", "import-root", root, "--state", state)
    assert code == 2 and "under-signed: 0 of the 2" in out and "Traceback" not in out
    ok("keys", "sign-root", "--key", offline / "root-1.pem", root)
    ok("keys", "sign-root", "--key", offline / "root-3.pem", root)
    out = ok("keys", "import-root", root, "--state", state, "--json")
    assert json.loads(out)["created"] is True

    key = ec.generate_private_key(ec.SECP256R1())
    private = tmp_path / "image-key.pem"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))  # fmt: skip
    public = tmp_path / "image-key.pub.pem"
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
        serialization.PublicFormat.SubjectPublicKeyInfo))  # fmt: skip
    ok("release", "add-hardware", "sensor-1", "--image-key", public, "--state", state)
    firmware = tmp_path / "app.bin"
    firmware.write_bytes(bytes(range(256)) * 64)
    images = {}
    for version, counter in (("1.0.0", 1), ("1.1.0", 2), ("1.0.5", 1)):
        firmware.write_bytes(bytes(range(256)) * 64 + version.encode())
        images[version] = tmp_path / f"app-{version}.img"
        ok("image", "sign", firmware, images[version], "--key", private,
           "--version", version, "--security-counter", str(counter))  # fmt: skip

    out = ok("release", "publish", images["1.0.0"], "--hardware", "sensor-1", "--state", state)
    assert "published sensor-1 1.0.0" in out and "endorsed for attestation" in out
    out = ok("release", "publish", images["1.1.0"], "--hardware", "sensor-1", "--state", state,
             "--json")  # fmt: skip
    answer = json.loads(out)
    assert answer["endorsement"]["ok"] and len(answer["release"]["deltas"]) == 1
    endorsed = json.loads(ok("endorse", "list", "--hwmodel", "sensor-1", "--json", "--state",
                             state))  # fmt: skip
    assert {e["swversion"] for e in endorsed} == {"1.0.0", "1.1.0"}
    assert answer["release"]["image_digest"] in {e["digest"] for e in endorsed}

    # Refusals: a lower security counter, an unknown model, a bad signature.
    code, out = sevenfold("release", "publish", images["1.0.5"], "--hardware", "sensor-1",
                          "--state", state)  # fmt: skip
    assert code == 2 and "security counter 1 is below the current release's 2" in out
    code, out = sevenfold("release", "publish", images["1.0.5"], "--hardware", "sensor-9",
                          "--state", state)  # fmt: skip
    assert code == 2 and "not registered" in out
    broken = tmp_path / "broken.img"
    data = bytearray(images["1.0.5"].read_bytes())
    data[600] ^= 0xFF
    broken.write_bytes(bytes(data))
    code, out = sevenfold("release", "publish", broken, "--hardware", "sensor-1", "--state", state)
    assert code == 2 and "SHA256 TLV" in out and "Traceback" not in out

    listed = json.loads(ok("release", "list", "--state", state, "--json"))
    assert [(r["version"], r["current"]) for r in listed] == [("1.0.0", False), ("1.1.0", True)]
    assert "1.1.0" in ok("release", "list", "--state", state)
    shown = json.loads(ok("release", "show", "sensor-1", "1.1.0", "--state", state, "--json"))
    assert shown["deltas"][0]["base_version"] == "1.0.0"
    assert "delta from 1.0.0" in ok("release", "show", "sensor-1", "1.1.0", "--state", state)

    # Rotations: the release key at once; timestamp and root through signed roots.
    assert "rotated the releases key" in ok("keys", "rotate", "releases", "--state", state)
    rotation = tmp_path / "rotate-timestamp.json"
    ok("keys", "rotate", "timestamp", "--state", state, "--out", rotation)
    for n in (1, 2):
        ok("keys", "sign-root", "--key", offline / f"root-{n}.pem", rotation)
    assert "installed root v2" in ok("keys", "import-root", rotation, "--state", state)
    ok("keys", "create-root-key", offline / "root-4.pem")
    rotation = tmp_path / "rotate-root.json"
    new_keys = ["--root-key", offline / "root-3.pub.pem", "--root-key", offline / "root-4.pub.pem"]
    ok("keys", "rotate", "root", "--state", state, "--out", rotation, "--threshold", "2", *new_keys)
    out = ok("keys", "sign-root", "--key", offline / "root-1.pem", rotation)
    assert "not a root key of v3" in out
    ok("keys", "sign-root", "--key", offline / "root-2.pem", rotation)
    code, out = sevenfold("keys", "import-root", rotation, "--state", state)
    assert code == 2 and "root v3 itself" in out
    ok("keys", "sign-root", "--key", offline / "root-3.pem", rotation)
    ok("keys", "sign-root", "--key", offline / "root-4.pem", rotation)
    ok("keys", "import-root", rotation, "--state", state)
    shown_keys = json.loads(ok("keys", "show", "--state", state, "--json"))
    assert shown_keys["root_version"] == 3 and len(shown_keys["roles"]["root"]["keyids"]) == 2
    assert "root v3" in ok("keys", "show", "--state", state)

    # The server cannot be reached: published all the same, endorsement retried by publishing again.
    firmware.write_bytes(bytes(range(256)) * 64 + b"1.2.0")
    image = tmp_path / "app-1.2.0.img"
    ok("image", "sign", firmware, image, "--key", private, "--version", "1.2.0",
       "--security-counter", "3")  # fmt: skip
    dead = f"http://127.0.0.1:{free_port()}"
    code, out = sevenfold("release", "publish", image, "--hardware", "sensor-1", "--state", state,
                          "--url", dead)  # fmt: skip
    assert code == 2 and "published sensor-1 1.2.0" in out and "endorsement failed" in out
    assert "sevenfold release publish" in out
    out = ok("release", "publish", image, "--hardware", "sensor-1", "--state", state)
    assert "already published" in out and "endorsed for attestation" in out

    # An older version at the same counter moves the model back: only with --allow-downgrade.
    firmware.write_bytes(bytes(range(256)) * 64 + b"1.1.5")
    older = tmp_path / "app-1.1.5.img"
    ok("image", "sign", firmware, older, "--key", private, "--version", "1.1.5",
       "--security-counter", "3")  # fmt: skip
    code, out = sevenfold("release", "publish", older, "--hardware", "sensor-1", "--state", state,
                          "--no-endorse")  # fmt: skip
    assert (
        code == 2 and "older than the current release 1.2.0" in out and "--allow-downgrade" in out
    )
    ok("release", "publish", older, "--hardware", "sensor-1", "--state", state, "--no-endorse",
       "--allow-downgrade")  # fmt: skip
    listed = json.loads(ok("release", "list", "--state", state, "--json"))
    assert [r["version"] for r in listed if r["current"]] == ["1.1.5"]
