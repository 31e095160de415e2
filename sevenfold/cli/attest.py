"""``sevenfold attest``: where each device stands with the verifier, and what to do about it."""

from __future__ import annotations

from typing import Annotated

import typer

from sevenfold.api_client import FleetClient
from sevenfold.cli.options import JsonOption, StateOption, UrlOption, state_dir
from sevenfold.cli.output import emit_json, reported_errors, say, show
from sevenfold.cli.tables import appraisal_table, standing_table, trust

app = typer.Typer(help="Remote attestation: verdicts, passes, quarantine.", no_args_is_help=True)

DeviceArgument = Annotated[str, typer.Argument(help="Device id.")]


def _client(state: StateOption, url: UrlOption) -> FleetClient:
    return FleetClient.for_state_dir(state_dir(state), url=url)


@app.command("status")
def status(
    device: Annotated[
        str | None, typer.Option("--device", help="One device, with its history.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="History entries shown.")] = 20,
    state: StateOption = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Every device's latest verdict and pass, or one device's appraisal history."""
    with reported_errors():
        client = _client(state, url)
        if device is None:
            rows = client.get("/api/v1/attestation")
        else:
            detail = client.get(f"/api/v1/attestation/{device}", limit=limit)
    if device is None:
        if as_json:
            emit_json(rows)
        else:
            show(standing_table(rows, title=f"{len(rows)} devices"))
        return
    if as_json:
        emit_json(detail)
        return
    show(standing_table([detail["standing"]], title=device))
    show(appraisal_table(detail["history"], title=f"last {len(detail['history'])} appraisals"))


@app.command("now")
def now(
    device: DeviceArgument, state: StateOption = None, url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:  # fmt: skip
    """Ask a device to attest at once (it does when it next listens: at once if online)."""
    with reported_errors():
        answer = _client(state, url).send("POST", f"/api/v1/attestation/{device}/attest")
    if as_json:
        emit_json(answer)
    else:
        say("asked ", (device, "bold"), " to attest; see sevenfold attest status --device ", device)


@app.command("quarantine")
def quarantine(
    device: DeviceArgument,
    reason: Annotated[str, typer.Option(help="Why, for the audit trail.", max=256)] = "",
    state: StateOption = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Cut a device off from everything but attestation until it is released."""
    with reported_errors():
        standing = _client(state, url).send(
            "POST", f"/api/v1/attestation/{device}/quarantine", {"reason": reason}
        )
    _report(standing, as_json)


@app.command("release")
def release(
    device: DeviceArgument, state: StateOption = None, url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:  # fmt: skip
    """Lift a quarantine; the device must pass an attestation again to get its topics back."""
    with reported_errors():
        standing = _client(state, url).send("POST", f"/api/v1/attestation/{device}/release")
    _report(standing, as_json)


@app.command("group")
def group(
    device: DeviceArgument,
    name: Annotated[str, typer.Argument(help="Device group, whose policy then applies.")],
    state: StateOption = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Put a device in a group (``sevenfold policy`` sets each group's policy)."""
    with reported_errors():
        standing = _client(state, url).send(
            "PUT", f"/api/v1/attestation/{device}/group", {"group": name}
        )
    _report(standing, as_json)


def _report(standing: dict[str, object], as_json: bool) -> None:
    if as_json:
        emit_json(standing)
    else:
        say((str(standing["device_id"]), "bold"), " in ", str(standing["group"]), ": ",
            trust(standing))  # fmt: skip
