"""``sevenfold endorse``: the reference values attestation judges measurements against."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated

import typer

from device_runtime.core.errors import ConfigError
from sevenfold.api_client import FleetClient
from sevenfold.cli.options import JsonOption, StateOption, UrlOption, state_dir
from sevenfold.cli.output import emit_json, reported_errors, say, show
from sevenfold.cli.tables import endorsement_table

app = typer.Typer(help="Endorsed measurements per hardware model.", no_args_is_help=True)

_CHUNK = 1 << 20


@app.command("add")
def add(
    hwmodel: Annotated[str, typer.Option(help="Hardware model the measurement is endorsed for.")],
    digest: Annotated[str | None, typer.Option(help="SHA-256, 64 hex digits.")] = None,
    image: Annotated[
        Path | None, typer.Option(help="A file to measure instead of giving --digest.")
    ] = None,
    component: Annotated[str, typer.Option(help="image or config.")] = "image",
    swversion: Annotated[str | None, typer.Option(help="The version it must claim.")] = None,
    security_version: Annotated[int | None, typer.Option(min=0, max=0xFFFFFFFF)] = None,
    state: StateOption = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Endorse a measurement: devices of this model that run it may pass attestation."""
    with reported_errors():
        if (digest is None) == (image is None):
            raise ConfigError("give exactly one of --digest and --image")
        measured = digest if digest is not None else _sha256(image)  # type: ignore[arg-type]
        answer = FleetClient.for_state_dir(state_dir(state), url=url).send(
            "POST",
            "/api/v1/endorsements",
            {
                "hwmodel": hwmodel,
                "component": component,
                "digest": measured,
                "swversion": swversion,
                "security_version": security_version,
            },
        )
    if as_json:
        emit_json(answer)
        return
    endorsement = answer["endorsement"]
    say("endorsed " if answer["created"] else "already endorsed ", component, " ",
        str(endorsement["digest"])[:16], "... for ", (hwmodel, "bold"),
        f" (id {endorsement['id']})")  # fmt: skip


@app.command("list")
def list_endorsements(
    hwmodel: Annotated[str | None, typer.Option(help="Only this hardware model.")] = None,
    state: StateOption = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Every endorsed measurement."""
    params = {} if hwmodel is None else {"hwmodel": hwmodel}
    with reported_errors():
        rows = FleetClient.for_state_dir(state_dir(state), url=url).get(
            "/api/v1/endorsements", **params
        )
    if as_json:
        emit_json(rows)
    else:
        show(endorsement_table(rows))


@app.command("withdraw")
def withdraw(
    reference: Annotated[int, typer.Argument(help="Endorsement id (sevenfold endorse list).")],
    state: StateOption = None,
    url: UrlOption = None,
) -> None:
    """Withdraw an endorsement: devices running it fail their next attestation."""
    with reported_errors():
        FleetClient.for_state_dir(state_dir(state), url=url).send(
            "DELETE", f"/api/v1/endorsements/{reference}"
        )
    say("withdrew endorsement ", str(reference))


def _sha256(path: Path) -> str:
    try:
        digest = hashlib.sha256()
        with path.open("rb") as stream:
            while chunk := stream.read(_CHUNK):
                digest.update(chunk)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    return digest.hexdigest()
