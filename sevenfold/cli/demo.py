"""``sevenfold demo``: the whole story on one machine, in under a minute.

A fleet server with its managed mTLS broker and a handful of simulated boards
whose consoles are pseudo-terminals: the first has a TPM 2.0 (swtpm, with an
EK certificate from its vendor's CA, behind tpm2-abrmd), the second a DICE
root of trust, the rest the development-only software one. The factory
station provisions each over its console exactly as boards on a line are
(the TPM board proves its EK and that its key is TPM-resident); then each
board runs as a process of its own, connects with the key its root of trust
holds (the TPM board's TLS handshake is signed by the TPM), enrolls and
heartbeats; and the fleet table shows each device's proven root of trust.
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
from typing import Annotated, Any

import typer

from fleet_platform.pki import CertificateAuthority
from fleet_platform.server_config import ServerConfig
from sevenfold.api_client import FleetClient
from sevenfold.cli.extras import missing_extra
from sevenfold.cli.output import emit_json, reported_errors, say, show
from sevenfold.cli.tables import device_table

HWMODEL = "sim-board-1"
BOARD_TIMEOUT_S = 120.0


def board_kinds(count: int) -> list[str]:
    """The root-of-trust kind of each demo board, in order: a TPM, a DICE, then software."""
    return (["tpm", "dice"] + ["software"] * count)[:count]


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
            if not as_json:
                say(f"running {devices} boards, each as a process of its own")
            running: list[tuple[Path, subprocess.Popen[str]]] = []
            try:
                for directory, kind in boards:
                    process = _start_board(directory, kind, beats, config.prefix, tpm)
                    running.append((directory, process))
                outcomes = [_outcome(directory.name, process) for directory, process in running]
            finally:
                for _, process in running:  # none outlives the demo, whatever stopped it
                    if process.poll() is None:
                        process.kill()
                        process.wait()
            rows = FleetClient.for_state_dir(state).get("/api/v1/devices")
    failed = [outcome for outcome in outcomes if outcome["error"]]
    online = [row for row in rows if row["status"] == "online"]
    if as_json:
        emit_json({"devices": rows, "errors": {o["device_id"]: o["error"] for o in failed}})
    else:
        show(device_table(rows, title="Fleet"))
        for outcome in failed:
            say((str(outcome["device_id"]), "red"), ": ", str(outcome["error"]))
        say(f"{len(online)}/{devices} devices online")
    if failed or len(online) != devices:
        raise typer.Exit(1)


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
