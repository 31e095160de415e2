"""``sevenfold endorse``: the reference values attestation judges measurements against."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated

import typer

from device_runtime.core.errors import ConfigError
from device_runtime.core.hmac_sha256 import digests_equal
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
        Path | None,
        typer.Option(
            help="A file to measure instead of giving --digest: a signed image's measurement"
            " is its image hash (what its first stage measures), any other file's its SHA-256."
        ),
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
    """The measurement a device reports for *path*: an MCUboot image's hash (the SHA256 TLV
    its first stage checks, not the file's hash: the signature and slot padding lie outside
    it), else the SHA-256 of the whole file (a configuration)."""
    from device_runtime.core import signed_image

    try:
        with path.open("rb") as stream:
            if int.from_bytes(stream.read(4), "little") == signed_image.IMAGE_MAGIC:
                stream.seek(0)
                parsed = signed_image.inspect(stream.read, chunk_size=_CHUNK)
                if not digests_equal(parsed.value(signed_image.SHA256), parsed.digest):
                    raise ConfigError(f"{path}: the image's SHA256 TLV is not its hash")
                return parsed.digest.hex()
            stream.seek(0)
            digest = hashlib.sha256()
            while chunk := stream.read(_CHUNK):
                digest.update(chunk)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except signed_image.ImageError as exc:
        raise ConfigError(f"{path}: {exc.reason}") from None
    return digest.hexdigest()
