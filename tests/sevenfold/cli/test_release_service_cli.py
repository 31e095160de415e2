"""`sevenfold keys` and `sevenfold release` as operators type them, without a running server.

What an operator signing a root offline is shown (every role's keys, the
expiry, what changes from the previous root), what the offline machine
refuses to sign, the private keys the server refuses to be given, a model's
image keys set again, and a publish that leaves out a delta it cannot make.
"""

from __future__ import annotations

import json
from pathlib import Path

from securesystemslib.signer import CryptoSigner, SSlibKey

from tests.sevenfold.cli.typed_commands import ok, sevenfold
from tests.update_service.release_fixtures import EMPTY_RUN_KEY, EMPTY_RUN_PAYLOADS
from update_service import root_metadata
from update_service.signing_keys import generate_signer, public_pem


def _ceremony(tmp_path: Path) -> tuple[Path, Path]:
    """Two offline root keys (2 of 2) and a repository whose root v1 they signed."""
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    offline = tmp_path / "offline"
    offline.mkdir()
    for n in (1, 2):
        ok("keys", "create-root-key", offline / f"root-{n}.pem")
    root = tmp_path / "root.json"
    keys = [a for n in (1, 2) for a in ("--root-key", offline / f"root-{n}.pub.pem")]
    ok("keys", "init", "--state", state, "--out", root, *keys)
    for n in (1, 2):
        ok("keys", "sign-root", "--key", offline / f"root-{n}.pem", root)
    ok("keys", "import-root", root, "--state", state)
    return state, offline


def test_sign_root_shows_what_is_signed_and_what_changes(tmp_path: Path) -> None:
    state, offline = _ceremony(tmp_path)
    installed = state / "repository" / "metadata" / "1.root.json"
    first = root_metadata.read_root_file(installed).signed
    rotation = tmp_path / "rotate-timestamp.json"
    out = json.loads(ok("keys", "rotate", "timestamp", "--state", state, "--out", rotation,
                        "--json"))  # fmt: skip
    new = root_metadata.read_root_file(rotation).signed
    (added,) = new.roles["timestamp"].keyids
    (removed,) = first.roles["timestamp"].keyids
    assert f"timestamp: adds key {added}" in out["changes"]
    assert f"timestamp: removes key {removed}" in out["changes"]
    # The expiry is renewed too (to the second: within one, it is the same).
    assert len(out["changes"]) == 2 + (new.expires != first.expires)
    text = ok("keys", "rotate", "root", "--state", state, "--out", tmp_path / "renew.json")
    assert "changes from the installed root v1:" in text and "adds key" not in text

    # Without the previous root: every role, key by key, and a note that changes are not shown.
    text = ok("keys", "sign-root", "--key", offline / "root-1.pem", rotation)
    assert f"root v2, expires {new.expires.isoformat()}" in text
    for name, role in new.roles.items():
        assert name in text and all(keyid in text for keyid in role.keyids)
    assert "2 of 2" in text and "give --previous FILE" in text
    # With it: what changes, as the server said when it wrote the file.
    answer = json.loads(ok("keys", "sign-root", "--key", offline / "root-2.pem", rotation,
                           "--previous", installed, "--json"))  # fmt: skip
    assert answer["changes"] == out["changes"]
    assert answer["root"]["roles"]["timestamp"] == {"threshold": 1, "keyids": [added]}
    text = ok("keys", "sign-root", "--key", offline / "root-2.pem", rotation,
              "--previous", installed)  # fmt: skip
    assert f"changes from the previous root: {len(out['changes'])}" in text
    assert f"adds key {added}" in text


def test_sign_root_refuses_a_root_listing_a_key_under_a_keyid_not_its_own(tmp_path: Path) -> None:
    state, offline = _ceremony(tmp_path)
    rotation = tmp_path / "next.json"
    ok("keys", "rotate", "root", "--state", state, "--out", rotation)
    md = root_metadata.read_root_file(rotation)
    keyid = md.signed.roles["root"].keyids[0]
    fake = "f" * 64  # the same root key again, so that it alone meets a threshold of 2
    md.signed.keys[fake] = SSlibKey.from_dict(fake, md.signed.keys[keyid].to_dict())
    md.signed.roles["root"].keyids.append(fake)
    md.signed.roles["root"].threshold = 3
    root_metadata.write_root_file(rotation, md)
    before = rotation.read_bytes()
    code, out = sevenfold("keys", "sign-root", "--key", offline / "root-1.pem", rotation)
    assert code == 2 and "is listed under a keyid that is not its own" in out
    assert "Traceback" not in out and rotation.read_bytes() == before


def test_the_server_refuses_private_root_and_image_keys(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    ok("keys", "create-root-key", tmp_path / "root-1.pem")
    code, out = sevenfold("keys", "init", "--state", state, "--root-key", tmp_path / "root-1.pem",
                          "--out", tmp_path / "root.json")  # fmt: skip
    assert code == 2 and "holds a private key: a root key's private half never goes" in out
    assert "Traceback" not in out and not (tmp_path / "root.json").exists()
    assert not (state / "update-service").exists()
    (tmp_path / "ceremony").mkdir()
    state, _ = _ceremony(tmp_path / "ceremony")
    image_key = tmp_path / "image-key.pem"
    image_key.write_bytes(generate_signer().private_bytes)
    code, out = sevenfold("release", "add-hardware", "sensor-1", "--image-key", image_key,
                          "--state", state)  # fmt: skip
    assert code == 2 and f"{image_key} holds a private key: an image signing key" in out
    assert "Traceback" not in out
    assert not (state / "update-service" / "hardware" / "sensor-1.json").exists()


def test_a_model_whose_record_was_lost_gets_its_image_keys_again(tmp_path: Path) -> None:
    state, _ = _ceremony(tmp_path)
    public = tmp_path / "image-key.pub.pem"
    public.write_bytes(public_pem(generate_signer().public_key))
    ok("release", "add-hardware", "sensor-1", "--image-key", public, "--state", state)
    (state / "update-service" / "hardware" / "sensor-1.json").unlink()
    code, out = sevenfold("release", "add-hardware", "sensor-1", "--image-key", public,
                          "--state", state)  # fmt: skip
    assert code == 2 and "sevenfold release set-image-keys sensor-1" in out
    answer = json.loads(ok("release", "set-image-keys", "sensor-1", "--image-key", public,
                           "--state", state, "--json"))  # fmt: skip
    assert answer == {"model": "sensor-1", "image_keys": 1, "releases": []}
    out = ok("release", "set-image-keys", "sensor-1", "--image-key", public, "--state", state)
    assert "image keys of sensor-1 replaced by 1 key(s); its record has 0 release(s)" in out
    code, out = sevenfold("release", "set-image-keys", "sensor-9", "--image-key", public,
                          "--state", state)  # fmt: skip
    assert code == 2 and "add-hardware sensor-9" in out


def test_a_publish_says_which_delta_it_left_out(tmp_path: Path) -> None:
    signer = CryptoSigner(EMPTY_RUN_KEY)
    key = tmp_path / "image-key.pem"
    key.write_bytes(signer.private_bytes)
    public = tmp_path / "image-key.pub.pem"
    public.write_bytes(public_pem(signer.public_key))
    images = []
    for version, payload in zip(("1.0.0", "1.1.0"), EMPTY_RUN_PAYLOADS, strict=True):
        firmware = tmp_path / f"app-{version}.bin"
        firmware.write_bytes(payload)
        images.append(tmp_path / f"app-{version}.img")
        ok("image", "sign", firmware, images[-1], "--key", key, "--version", version,
           "--security-counter", "1")  # fmt: skip
    for output in ("text", "json"):
        (tmp_path / output).mkdir()
        state, _ = _ceremony(tmp_path / output)
        ok("release", "add-hardware", "board-k", "--image-key", public, "--state", state)
        publish = ("release", "publish", "--hardware", "board-k", "--state", state, "--no-endorse")
        ok(*publish, images[0])
        # The base image is gone from targets/: the delta from it cannot be made.
        (base,) = (state / "repository" / "targets" / "board-k").glob("*.board-k-1.0.0.img")
        base.unlink()
        if output == "json":
            answer = json.loads(ok(*publish, images[1], "--json"))
            (warning,) = answer["release"]["warnings"]
            assert warning.startswith("no delta from 1.0.0: its image ")
            assert answer["release"]["deltas"] == []
        else:
            out = ok(*publish, images[1])
            assert "published board-k 1.1.0" in out
            assert "warning no delta from 1.0.0: its image " in out


def test_importing_the_installed_root_again_says_what_was_left_to_finish(tmp_path: Path) -> None:
    state, _ = _ceremony(tmp_path)
    installed = state / "repository" / "metadata" / "1.root.json"
    out = ok("keys", "import-root", installed, "--state", state)
    assert "root v1 was installed already; re-signed nothing (nothing was left to finish)" in out
    answer = json.loads(ok("keys", "import-root", installed, "--state", state, "--json"))
    assert answer["already_installed"] and answer["resigned"] == [] and not answer["created"]
