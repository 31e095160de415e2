"""``sevenfold policy``: the appraisal policy of each device group."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from sevenfold.api_client import FleetClient
from sevenfold.cli.options import JsonOption, StateOption, UrlOption, state_dir
from sevenfold.cli.output import emit_json, reported_errors, show
from sevenfold.cli.tables import policy_table

app = typer.Typer(help="Appraisal policies per device group.", no_args_is_help=True)

GroupOption = Annotated[str, typer.Option("--group", help="Device group.")]


@app.command("show")
def show_policies(
    group: Annotated[str | None, typer.Option("--group", help="Only this group.")] = None,
    state: StateOption = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Every group's policy (``default`` applies to devices in no other group)."""
    with reported_errors():
        client = FleetClient.for_state_dir(state_dir(state), url=url)
        if group is None:
            policies = client.get("/api/v1/policies")
        else:
            policies = {group: client.get(f"/api/v1/policies/{group}")}
    if as_json:
        emit_json(policies)
    else:
        show(policy_table(policies))


@app.command("set")
def set_policy(
    group: GroupOption = "default",
    allow_roots: Annotated[
        str | None,
        typer.Option(help="Root-of-trust kinds accepted, comma-separated: tpm, dice, software."),
    ] = None,
    min_security_version: Annotated[int | None, typer.Option(min=0, max=0xFFFFFFFF)] = None,
    allow_debug: Annotated[
        bool | None, typer.Option("--allow-debug/--refuse-debug", help="Accept debug enabled.")
    ] = None,
    max_evidence_age: Annotated[
        int | None, typer.Option(min=1, max=3600, help="Seconds from challenge to appraisal.")
    ] = None,
    require_endorsed_config: Annotated[
        bool | None,
        typer.Option(
            "--require-endorsed-config/--warn-unendorsed-config",
            help="Refuse, or only warn about, a configuration nobody endorsed.",
        ),
    ] = None,
    certificate_hours: Annotated[
        int | None, typer.Option(min=1, max=720, help="Lifetime of a pass's fleet certificate.")
    ] = None,
    state: StateOption = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Change a group's policy; settings not given keep their values."""
    changes: dict[str, Any] = {}
    if allow_roots is not None:
        changes["allowed_roots"] = [root.strip() for root in allow_roots.split(",") if root]
    for name, value in (
        ("min_security_version", min_security_version),
        ("allow_debug", allow_debug),
        ("max_evidence_age_s", max_evidence_age),
        ("require_endorsed_config", require_endorsed_config),
        ("certificate_hours", certificate_hours),
    ):
        if value is not None:
            changes[name] = value
    with reported_errors():
        policy = FleetClient.for_state_dir(state_dir(state), url=url).send(
            "PUT", f"/api/v1/policies/{group}", changes
        )
    if as_json:
        emit_json(policy)
    else:
        show(policy_table({group: policy}))
