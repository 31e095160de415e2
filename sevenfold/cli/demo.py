"""``sevenfold demo``: the whole story on one machine, in under a minute.

A fleet server with its managed mTLS broker and a handful of simulated boards
whose consoles are pseudo-terminals: the first has a TPM 2.0 (swtpm, with an
EK certificate from its vendor's CA, behind tpm2-abrmd), the second a DICE
root of trust, the rest the development-only software one; with four boards
or more the last is a DICE board whose firmware image was tampered with. The
factory station provisions each over its console exactly as boards on a line
are (the TPM board proves its EK and that its key and quote key are
TPM-resident). The sample firmware is built and signed with a release key
made for the demo (``firmware_images``), and every board gets the sensor app
1.0.0 in its slot, its first stage trusting that key; the tampered board gets
1.0.0 with an attacker's change to its application, signed with the same key,
as a compromised build server would ship it. The operator creates the TUF
release repository (root signed by two offline keys, then imported), registers
the board's hardware model with the release key, and publishes 1.0.0, which
endorses the image's measurement for attestation; then lets the development
line's group use software roots of trust. Then each board runs as a process
of its own: its first stage verifies and measures the image and boots the
application, it attests through the broker's recovery listener with its
DeviceID certificate (evidence signed in its root of trust; the TPM adds a
quote), earns a 24-hour fleet certificate,
connects with it (the TPM board's TLS handshake is signed by the TPM), enrolls
and heartbeats while its application samples its sensor. The tampered board
boots (its signature is good) but its measurement is no endorsed image's: it is
refused and never reaches its application topics. The tables show each
device's proven root of trust and the verifier's verdict.

Then the rollout: the operator publishes 1.1.0, 1.2.0 and 1.3.0 in turn, and
the boards' update agents (which the factory gave the repository's root) take
each from the TUF repository into their other slot and reboot into it for one
trial. 1.1.0 passes its health check and is confirmed; 1.2.0 crashes on boot
and 1.3.0 fails its health check, and the boot after each reverts to 1.1.0 by
itself and reports why. The tampered board takes part too: refused by its
verifier, it is cut off from its application plane but not from its update
service, so it installs the genuine 1.1.0, passes its trial and attests again.
Everything runs in a temporary state directory and is torn down at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from device_runtime.core.errors import ConfigError
from fleet_platform.server_config import ServerConfig
from sevenfold.api_client import FleetClient
from sevenfold.cli.extras import missing_extra
from sevenfold.cli.output import emit_json, reported_errors, say, show
from sevenfold.cli.tables import device_table, standing_table

if TYPE_CHECKING:
    from securesystemslib.signer import CryptoSigner

    from fleet_platform.pki import CertificateAuthority

HWMODEL = "sim-board-1"
BOARD_TIMEOUT_S = 120.0
ROLLOUT = ("1.1.0", "1.2.0", "1.3.0")
"""Published after the boards came up on 1.0.0: an update, then two broken releases."""
FIRMWARE = "1.0.0"
DEV_GROUP = "dev-line"
"""The group the software boards are put in, whose policy admits software roots of trust."""


def board_kinds(count: int) -> list[str]:
    """The root-of-trust kind of each demo board, in order: a TPM, a DICE, then software;
    with four or more, the last is the tampered DICE board."""
    kinds = (["tpm", "dice"] + ["software"] * count)[:count]
    if count >= 4:
        kinds[-1] = "dice"
    return kinds


def is_tampered(index: int, count: int) -> bool:
    """Whether board *index* (0-based) of *count* runs the tampered image: the last of 4+."""
    return count >= 4 and index == count - 1


def demo(
    devices: Annotated[int, typer.Option("--devices", min=1, max=50)] = 5,
    beats: Annotated[int, typer.Option("--beats", min=1, max=20)] = 3,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Start a server and simulated boards; provision them; show them online; exit 0 if all are."""
    with reported_errors():
        try:
            from sevenfold.server import FleetServer
        except ModuleNotFoundError as exc:
            raise missing_extra(command="demo", extra="server", error=exc) from exc
    kinds = board_kinds(devices)
    with reported_errors(), tempfile.TemporaryDirectory(prefix="sevenfold-demo-") as tmp:
        state = Path(tmp)
        maker = manufacturer_ca(state)
        # Free ports: a demo must not collide with a real server (or another demo) on 8883.
        config = ServerConfig(
            state_dir=state,
            http_port=0,
            broker_port=0,
            recovery_port=0,
            heartbeat_interval=1,
            manufacturer_cas=(maker.cert_path,),
        )
        with FleetServer(config=config) as fleet, _board_tpm(state, "tpm" in kinds) as tpm:
            assert fleet.broker is not None
            if not as_json:
                say(("fleet server", "bold"), " ", fleet.http_url, " (OpenAPI at /docs)")
                say(
                    ("managed broker", "bold"),
                    f" mTLS on {fleet.broker.host}:{fleet.broker.port}",
                )
                say(
                    f"provisioning {devices} simulated boards over their consoles (pty):"
                    f" {', '.join(kinds)}"
                )
            boards = provision_over_consoles(state, fleet.http_url, kinds, tpm, maker)
            images, release_key = flash_boards(state, [directory for directory, _ in boards])
            client = FleetClient.for_state_dir(state)
            release = publish_release(state, images[FIRMWARE], release_key)
            trust_updates(state, fleet.http_url, [directory for directory, _ in boards])
            _operate(client, boards)
            if not as_json:
                tampering = ", the last a tampered one signed with the same key" * (devices >= 4)
                say(
                    f"built the sensor app's releases in {state / 'firmware'}; every board has"
                    f" {FIRMWARE} in its slot{tampering}"
                )
                say(
                    f"published firmware {FIRMWARE} for {HWMODEL} to the TUF repository at"
                    f" {fleet.http_url}/tuf (root: 2 of 2 offline keys), which endorsed its"
                    f" measurement {release['image_digest'][:16]}...; software boards in group"
                    f" {DEV_GROUP!r}, whose policy admits them"
                )
                say(f"running {devices} boards, each as a process of its own; they attest first")
            outcomes = _run_boards(boards, beats, config.prefix, tpm)
            rows = client.get("/api/v1/devices")
            standings = client.get("/api/v1/attestation")
            tampered = {boards[-1][0].name} if devices >= 4 else set()
            refused = {o["device_id"]: o["error"] for o in outcomes if o["device_id"] in tampered}
            failed = [o for o in outcomes if o["error"] and o["device_id"] not in tampered]
            online = [row for row in rows if row["status"] == "online"]
            expected_online = devices - len(tampered)
            if not as_json:
                _show_fleet(rows, standings, outcomes, failed, refused)
                say(f"{len(online)}/{expected_online} attested devices online")
            rollout = [
                roll_out(state, version, images[version], boards, config.prefix, tpm, as_json)
                for version in ROLLOUT
            ]
            after = {row["device_id"]: row for row in client.get("/api/v1/devices")}
    healed = [name for name in tampered if after.get(name, {}).get("status") == "online"]
    expected = {"1.1.0": "confirmed", "1.2.0": "reverted", "1.3.0": "reverted"}
    rolled_out = all(
        step["outcome"] == expected[step["version"]] and step["boards"] == len(boards)
        for step in rollout
    )
    cut_off = all(error and "contraindicated" in error for error in refused.values())
    if as_json:
        emit_json({
            "devices": rows, "attestation": standings, "release": release,
            "errors": {o["device_id"]: o["error"] for o in failed}, "refused": refused,
            "firmware": {o["device_id"]: {key: o.get(key) for key in ("firmware", "readings")}
                         for o in outcomes},
            "rollout": rollout,
            "healed": healed,
        })  # fmt: skip
    else:
        for name in healed:
            say((name, "bold"), ", refused for its tampered image, took 1.1.0 from its update"
                " service (which a refused board still reaches) and attests again")  # fmt: skip
        say(
            f"rollout: {len(boards)} boards took 1.1.0 and confirmed it, and reverted 1.2.0"
            " and 1.3.0 by themselves"
            if rolled_out
            else "rollout: not as expected (above)"
        )
    if (
        failed
        or len(online) != expected_online
        or not cut_off
        or not rolled_out
        or (len(healed) != len(tampered))
    ):
        raise typer.Exit(1)


def _show_fleet(
    rows: list[dict[str, Any]],
    standings: list[dict[str, Any]],
    outcomes: list[dict[str, Any]],
    failed: list[dict[str, Any]],
    refused: dict[str, str],
) -> None:
    show(device_table(rows, title="Fleet"))
    show(standing_table(standings, title="Attestation"))
    for outcome in outcomes:
        if outcome.get("readings"):
            say((str(outcome["device_id"]), "bold"), " runs ", _last_reading(outcome))
    for outcome in failed:
        say((str(outcome["device_id"]), "red"), ": ", str(outcome["error"]))
    for device_id, error in refused.items():
        say((device_id, "bold"), " runs a tampered image and was refused: ", str(error))


def _run_boards(
    boards: list[tuple[Path, str]], beats: int, prefix: str, tpm: Any
) -> list[dict[str, Any]]:
    """Boot every board once, each a process of its own, in parallel; their outcomes."""
    running: list[tuple[Path, subprocess.Popen[str]]] = []
    try:
        for directory, kind in boards:
            running.append((directory, _start_board(directory, kind, beats, prefix, tpm)))
        return [_outcome(directory.name, process) for directory, process in running]
    finally:
        for _, process in running:  # none outlives the demo, whatever stopped it
            if process.poll() is None:
                process.kill()
                process.wait()


def _reboot(boards: list[tuple[Path, str]], prefix: str, tpm: Any) -> list[dict[str, Any]]:
    """Power the boards off and on and let each run one heartbeat. The TPM board's chip is
    power-cycled with it: its measurement registers start from zero at every boot, so the
    image it boots now is what they will hold (its NV counters persist)."""
    if tpm is not None:
        tpm.stop()
        tpm.tpm.restart()
        tpm.start()
    return _run_boards(boards, 1, prefix, tpm)


def trust_updates(state: Path, url: str, boards: list[Path]) -> None:
    """The factory's last step: each board gets the release repository's root and address."""
    from device_runtime.simulated_board import install_update_trust
    from update_service.release_store import ReleaseStore

    root = (ReleaseStore(state).repository_dir / "metadata" / "1.root.json").read_bytes()
    for directory in boards:
        install_update_trust(directory, root=root, repository_url=url + "/tuf")


def roll_out(
    state: Path,
    version: str,
    image: bytes,
    boards: list[tuple[Path, str]],
    prefix: str,
    tpm: Any,
    quiet: bool,
) -> dict[str, Any]:
    """Publish *version* (endorsed) and let the boards take it: one boot installs it, the
    next tries it, and when the trial fails the one after reverts. What happened, as
    ``{"version", "boards", "outcome": "confirmed" | "reverted" | …, "reasons"}``."""
    from sevenfold.cli.release import endorse_release
    from update_service import release_publisher
    from update_service.release_store import ReleaseStore

    published = release_publisher.publish(ReleaseStore(state), image, model=HWMODEL).as_json()
    endorsement = endorse_release(published, state, None)
    if not endorsement["ok"]:
        raise ConfigError(f"the demo could not endorse {version}: {endorsement['error']}")
    took = _reboot(boards, prefix, tpm)
    installed = sum(o.get("pending") == version for o in took)
    tried = _reboot(boards, prefix, tpm)
    confirmed = sum(o.get("firmware") == version and not o.get("error") for o in tried)
    step: dict[str, Any] = {"version": version, "installed": installed, "boards": confirmed,
                            "outcome": "confirmed", "reasons": []}  # fmt: skip
    if confirmed != len(boards):
        failures = sorted({str(o.get("error")) for o in tried if o.get("error")})
        after = _reboot(boards, prefix, tpm)
        step["boards"] = sum(bool(o.get("reverted")) and not o.get("error") for o in after)
        step["outcome"] = "reverted"
        step["reasons"] = failures + sorted({str(o.get("reverted")) for o in after})
    if not quiet:
        say(f"published {version}: {installed}/{len(boards)} boards installed it into their"
            f" other slot and rebooted into it; {step['boards']} {step['outcome']} it")  # fmt: skip
        for reason in step["reasons"][:3]:
            say("  ", reason)
        if len(step["reasons"]) > 3:
            say(f"  (and {len(step['reasons']) - 3} more like them)")
    return step


def _last_reading(outcome: dict[str, Any]) -> str:
    """ "sensor app 1.0.0, temperature 20.11": the app reports readings in hundredths."""
    last = outcome["readings"][-1]
    values = ", ".join(f"{name} {int(value) / 100:.2f}" for name, value in sorted(last.items()))
    return f"firmware {outcome.get('firmware')}, last reading: {values}"


def flash_boards(state: Path, boards: list[Path]) -> tuple[dict[str, bytes], bytes]:
    """Build the sample firmware with a release key of the demo's own and put 1.0.0 in every
    board's slot (a tampered 1.0.0, signed with the same key, in the last of four or more);
    every release's image by version and the release key's public PEM."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from device_runtime.simulated_board import install_firmware
    from firmware_images.build import build, release_image
    from firmware_images.sensor_app.releases import release

    key = ec.generate_private_key(ec.SECP256R1())
    built = {image.version: image for image in build(key=key, out=state / "firmware")}
    images = {v: (state / "firmware" / image.file).read_bytes() for v, image in built.items()}
    genuine = images[FIRMWARE]
    tampered = release_image(release(FIRMWARE), key, tampered=True)
    for index, directory in enumerate(boards):
        image = tampered if is_tampered(index, len(boards)) else genuine
        install_firmware(directory, image=image, image_key=key.public_key())
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return images, public


def publish_release(
    state: Path, image: bytes, release_key: bytes, offline: list[CryptoSigner] | None = None
) -> dict[str, Any]:
    """The release line's steps, as `sevenfold keys` and `sevenfold release` take them: two
    root keys made "offline" (or the *offline* signers given, which a test of key
    compromise and rotation keeps), root v1 signed by both and imported, the hardware
    model registered with the release key, *image* published (its measurement endorsed
    through the server's API). The published release, as ``release publish --json`` shows
    it."""
    from sevenfold.cli.release import endorse_release
    from update_service import key_ceremony, release_publisher, root_metadata
    from update_service.release_store import ReleaseStore
    from update_service.signing_keys import generate_signer

    store = ReleaseStore(state)
    offline = offline or [generate_signer(), generate_signer()]
    root = key_ceremony.init_repository(
        store, root_keys=[signer.public_key for signer in offline], threshold=len(offline)
    )
    for signer in offline:
        root_metadata.sign_root(root, signer)
    key_ceremony.import_root(store, root)
    release_publisher.add_hardware(store, HWMODEL, [release_publisher.image_key_pem(release_key)])
    published = release_publisher.publish(store, image, model=HWMODEL).as_json()
    endorsement = endorse_release(published, state, None)
    if not endorsement["ok"]:
        raise ConfigError(f"the demo could not endorse its release: {endorsement['error']}")
    return published


def _operate(client: FleetClient, boards: list[tuple[Path, str]]) -> None:
    """What the fleet operator does before the boards boot: set the development line's policy."""
    client.send(
        "PUT", f"/api/v1/policies/{DEV_GROUP}", {"allowed_roots": ["tpm", "dice", "software"]}
    )
    for directory, kind in boards:
        if kind == "software":
            client.send("PUT", f"/api/v1/attestation/{directory.name}/group", {"group": DEV_GROUP})


def manufacturer_ca(state: Path) -> CertificateAuthority:
    """The demo line's manufacturer CA, made before the server starts so that its broker's
    recovery listener trusts the DeviceID certificates it issues."""
    from sevenfold.factory_station import init_ca

    return init_ca(state / "manufacturer-ca")


@contextlib.contextmanager
def _board_tpm(state: Path, wanted: bool) -> Iterator[Any]:
    """The TPM board's chip (swtpm, manufactured now) behind its resource manager, or None."""
    if not wanted:
        yield None
        return
    from device_runtime.simulated_tpm import SimulatedTpm, TpmResourceManager

    chip = SimulatedTpm(directory=state / "tpm")
    chip.start()
    manager = TpmResourceManager(tpm=chip, directory=state / "tpm" / "abrmd")
    saved = {name: os.environ.get(name) for name in manager.environment()}
    try:
        manager.start()
        # This process talks to the TPM too (its console, during provisioning).
        os.environ.update(manager.environment())
        yield manager
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        manager.stop()
        chip.kill()


def provision_over_consoles(
    state: Path, server: str, kinds: list[str], tpm: Any, authority: CertificateAuthority
) -> list[tuple[Path, str]]:
    """The factory line of the demo: one pty board per kind, provisioned by the station with
    *authority* as the manufacturer CA (which the server and its broker trust)."""
    from cryptography import x509

    from device_runtime.console_device import TPM_TCTI_FILE, ConsoleDevice
    from fleet_platform import api_tokens
    from sevenfold.factory_station import Station, StationError, device_id_for, provision

    token = api_tokens.read(state, name=api_tokens.FACTORY)
    if token is None:
        raise StationError("token", "the demo server wrote no factory token")
    tpm_cas = (
        [x509.load_pem_x509_certificate(tpm.tpm.ek_ca_certificate.read_bytes())]
        if tpm is not None
        else []
    )
    station = Station(
        authority=authority,
        server=server,
        token=token,
        name="demo",
        tpm_cas=tpm_cas,
        allow_software=True,  # the demo's simulated boards are a development line
    )
    boards = []
    for number, kind in enumerate(kinds, 1):
        serial = f"{number:04d}"
        directory = state / "devices" / device_id_for(HWMODEL, serial)
        directory.mkdir(parents=True)
        if kind == "tpm":
            (directory / TPM_TCTI_FILE).write_text(tpm.tcti)
        with ConsoleDevice(directory=directory, hwmodel=HWMODEL, serial=serial, rot=kind) as board:
            result = provision(station, board.path)
        if result.error is not None:
            raise StationError(result.code or "factory", f"{directory.name}: {result.error}")
        boards.append((directory, kind))
    return boards


def _start_board(
    directory: Path, kind: str, beats: int, prefix: str, tpm: Any
) -> subprocess.Popen[str]:
    env = dict(os.environ)
    if kind == "tpm":
        from device_runtime.ports.cpython import tpm_tls

        env.update(tpm.environment())
        env.update(tpm_tls.environment(tcti=tpm.tcti, directory=directory))
    return subprocess.Popen(
        [
            sys.executable, "-m", "device_runtime.simulated_board", "--dir", str(directory),
            "--kind", kind, "--hwmodel", HWMODEL, "--beats", str(beats), "--prefix", prefix,
        ],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip


def _outcome(device_id: str, process: subprocess.Popen[str]) -> dict[str, Any]:
    """The board's JSON line, or its failure in words."""
    try:
        out, err = process.communicate(timeout=BOARD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
    lines = out.strip().splitlines()
    try:
        outcome: dict[str, Any] = json.loads(lines[-1])
    except (IndexError, ValueError):
        return {"device_id": device_id, "error": (err or out).strip()[-500:] or "no outcome"}
    return outcome
