"""``sevenfold release``: hardware models, and publishing signed images to the repository.

Publishing is local (it writes the repository in the state directory under
its lock); the endorsement that lets devices running the new image pass
attestation goes through the running server's REST API, because the update
service may not import the attestation service. When that call fails the
release is published all the same: the command says so, exits 2, and names
the command to run again (publishing the same image again changes nothing
in the repository and retries the endorsement).
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated, Any

import typer

from device_runtime.core.errors import ConfigError, SevenfoldError
from device_runtime.ports.cpython.bounded_file import MAX_PEM_FILE, read_bounded
from sevenfold.api_client import FleetClient
from sevenfold.cli.extras import needs_extra
from sevenfold.cli.keys import writable_store
from sevenfold.cli.options import JsonOption, StateOption, UrlOption, state_dir
from sevenfold.cli.output import (
    emit_json,
    line,
    literal_table,
    reported_errors,
    say,
    show,
    warn,
)

app = typer.Typer(help="Releases in the update repository.", no_args_is_help=True)

MAX_IMAGE_FILE = 256 << 20
"""The verifier's own limit on an image (``signed_image.MAX_IMAGE_SIZE``)."""

HardwareOption = Annotated[str, typer.Option("--hardware", help="Hardware model.")]
ImageKeyOption = Annotated[
    list[Path] | None,
    typer.Option("--image-key", help="Public PEM key its images are signed with; repeatable."),
]


@app.command("add-hardware")
def add_hardware(
    model: Annotated[str, typer.Argument(help="Hardware model name (a-z, 0-9, '-').")],
    image_key: ImageKeyOption = None,
    state: StateOption = None,
    as_json: JsonOption = False,
) -> None:
    """Register a hardware model and the key(s) that sign its images."""
    with reported_errors():
        with needs_extra("release add-hardware", "server"):
            from update_service import release_publisher
        pems = _image_keys(image_key)
        written = release_publisher.add_hardware(writable_store(state), model, pems)
    if as_json:
        emit_json({"model": model, "image_keys": len(pems), "written": written})
        return
    say("registered ", (model, "bold"), " with ", len(pems), " image key(s); role model-",
        model, " delegated")  # fmt: skip


@app.command("set-image-keys")
def set_image_keys(
    model: Annotated[str, typer.Argument(help="A hardware model the repository has.")],
    image_key: ImageKeyOption = None,
    state: StateOption = None,
    as_json: JsonOption = False,
) -> None:
    """Replace the key(s) a model's images are signed with; rebuilds a lost model record.

    The old keys stop being accepted at once. Nothing in the repository changes:
    the security counter floor is the repository's current release whatever the
    record says.
    """
    with reported_errors():
        with needs_extra("release set-image-keys", "server"):
            from update_service import release_publisher
        pems = _image_keys(image_key)
        record = release_publisher.set_image_keys(writable_store(state), model, pems)
    releases = [r.version for r in record.releases]
    if as_json:
        emit_json({"model": model, "image_keys": len(pems), "releases": releases})
        return
    say("image keys of ", (model, "bold"), " replaced by ", len(pems), " key(s); its record has ",
        len(releases), " release(s)", f", current {releases[-1]}" if releases else "")  # fmt: skip


@app.command("publish")
def publish(
    image: Annotated[Path, typer.Argument(help="The signed MCUboot image.")],
    hardware: HardwareOption,
    endorse: Annotated[
        bool,
        typer.Option("--endorse/--no-endorse", help="Register its measurement for attestation."),
    ] = True,
    allow_downgrade: Annotated[
        bool,
        typer.Option(
            "--allow-downgrade",
            help="Publish an image older than the current one at the same security counter"
            " (reverting a bad release): devices go back to it.",
        ),
    ] = False,
    state: StateOption = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Check an image and publish it for a model; endorse its measurement for attestation."""
    with reported_errors():
        with needs_extra("release publish", "server"):
            from update_service import release_publisher
        data = read_bounded(image, MAX_IMAGE_FILE, what="image")
        directory = state_dir(state)
        release = release_publisher.publish(
            writable_store(state), data, model=hardware, allow_downgrade=allow_downgrade
        )
    endorsement: dict[str, Any] | None = None
    if endorse:
        endorsement = endorse_release(release.as_json(), directory, url)
        if not endorsement["ok"]:
            retry = shlex.join(["sevenfold", "release", "publish", str(image), "--hardware",
                                hardware, "--state", str(directory)])  # fmt: skip
            endorsement["retry"] = retry
    if as_json:
        emit_json({"release": release.as_json(), "endorsement": endorsement})
    else:
        _report(release, endorsement)
    if endorsement is not None and not endorsement["ok"]:
        raise typer.Exit(2)


@app.command("list")
def list_releases(
    hardware: Annotated[str | None, typer.Option("--hardware", help="Only this model.")] = None,
    state: StateOption = None,
    as_json: JsonOption = False,
) -> None:
    """Every published image, per model, oldest security counter first."""
    with reported_errors():
        with needs_extra("release list", "server"):
            from update_service import release_publisher
            from update_service.release_store import ReleaseStore
        releases = release_publisher.list_releases(
            ReleaseStore(state_dir(state)).reader(), hardware
        )
    if as_json:
        emit_json(releases)
        return
    rows = [(r["model"], r["version"], r["security_counter"], r["image_digest"][:16],
             r["length"], "current" if r["current"] else "") for r in releases]  # fmt: skip
    show(literal_table(headers=("model", "version", "security counter", "image digest",
                                "bytes", ""), title="releases", rows=rows))  # fmt: skip


@app.command("show")
def show_release(
    hardware: Annotated[str, typer.Argument(help="Hardware model.")],
    version: Annotated[str, typer.Argument(help="Release version.")],
    state: StateOption = None,
    as_json: JsonOption = False,
) -> None:
    """One release: its target, digests, and the deltas published to it."""
    with reported_errors():
        with needs_extra("release show", "server"):
            from update_service import release_publisher
            from update_service.release_store import ReleaseStore
        found = release_publisher.show_release(
            ReleaseStore(state_dir(state)).reader(), hardware, version
        )
    if as_json:
        emit_json(found)
        return
    rows = [(name, found[name]) for name in ("model", "version", "security_counter",
            "image_digest", "target", "length", "sha256", "current")]  # fmt: skip
    rows += [("delta from " + d["base_version"], f"{d['target']} ({d['length']} bytes)")
             for d in found["deltas"]]  # fmt: skip
    show(literal_table(headers=("field", "value"), title=f"{hardware} {version}", rows=rows))


def endorse_release(release: dict[str, Any], directory: Path, url: str | None) -> dict[str, Any]:
    """Register a published release's measurement with the server that attests its devices:
    ``{"ok": True, "created", "id"}``, or ``{"ok": False, "error"}`` when it cannot be reached
    or refuses (the release stays published; publishing it again retries)."""
    body = {
        "hwmodel": release["model"],
        "component": "image",
        "digest": release["image_digest"],
        "swversion": release["version"],
        "security_version": release["security_counter"],
    }
    try:
        answer = FleetClient.for_state_dir(directory, url=url).send(
            "POST", "/api/v1/endorsements", body
        )
    except SevenfoldError as exc:
        return {"ok": False, "error": exc.explain()}
    return {"ok": True, "created": answer["created"], "id": answer["endorsement"]["id"]}


def _report(release: Any, endorsement: dict[str, Any] | None) -> None:
    if release.already_published:
        say("already published: ", (f"{release.model} {release.version}", "bold"),
            " (nothing changed in the repository)")  # fmt: skip
    else:
        say("published ", (f"{release.model} {release.version}", "bold"), " (security counter ",
            release.security_counter, ") as ", release.target, "; image digest ",
            release.image_digest)  # fmt: skip
        for delta in release.deltas:
            say("  delta from ", delta["base_version"], ": ", delta["target"], " (",
                delta["length"], " bytes)")  # fmt: skip
        say("  signed ", ", ".join(release.roles), "; snapshot v", release.snapshot_version,
            ", timestamp v", release.timestamp_version)  # fmt: skip
        for warning in release.warnings:
            warn(warning)
    if endorsement is None:
        return
    if endorsement["ok"]:
        state = "endorsed" if endorsement["created"] else "already endorsed"
        say("  ", state, " for attestation (endorsement ", endorsement["id"], ")")
        return
    show(line(("endorsement failed", "red"), ": ", endorsement["error"]))
    show(line("  the release is published; to endorse it, run again: ", endorsement["retry"]))


def _image_keys(paths: list[Path] | None) -> list[str]:
    from update_service.release_publisher import image_key_pem

    if not paths:
        raise ConfigError("give --image-key PUB.pem (the public key its images are signed with)")
    return [
        image_key_pem(read_bounded(path, MAX_PEM_FILE, what="key file"), str(path))
        for path in paths
    ]
