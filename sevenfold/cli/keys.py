"""``sevenfold keys``: the TUF repository's keys, and the offline-root ceremony.

Root keys never reach the server: ``create-root-key`` and ``sign-root`` run on
the offline machine and need no state directory; ``init``, ``rotate`` and
``import-root`` run on the server, which writes root metadata for the
operators to sign and installs it once TUF's thresholds hold
(docs/releases.md has the ceremony step by step).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from device_runtime.core.errors import ConfigError
from fleet_platform.state_directory import secure_state_directory
from sevenfold.cli.extras import needs_extra
from sevenfold.cli.options import JsonOption, StateOption, state_dir
from sevenfold.cli.output import emit_json, literal_table, reported_errors, say, show

if TYPE_CHECKING:
    from tuf.api.metadata import Metadata, Root

    from update_service.release_store import ReleaseStore

app = typer.Typer(help="Keys of the update repository (TUF).", no_args_is_help=True)

RootKeyOption = Annotated[
    list[Path] | None,
    typer.Option("--root-key", help="A root key's public PEM file; repeat for each."),
]
ThresholdOption = Annotated[
    int | None, typer.Option("--threshold", min=1, help="Root signatures required (k of n).")
]
OutOption = Annotated[
    Path | None, typer.Option("--out", help="Where the root metadata to sign offline is written.")
]


@app.command("create-root-key")
def create_root_key(
    out: Annotated[Path, typer.Argument(help="The private key file to create (PEM, 0600).")],
    as_json: JsonOption = False,
) -> None:
    """Make a root key (ECDSA P-256) on the offline machine; OUT's public half goes beside it."""
    with reported_errors():
        with needs_extra("keys create-root-key", "server"):
            from update_service.signing_keys import (
                generate_signer,
                public_pem,
                write_private_key,
            )
        if out.exists():
            raise ConfigError(f"{out} exists; a root key is never overwritten")
        signer = generate_signer()
        public = _public_path(out)
        write_private_key(out, signer)
        public.write_bytes(public_pem(signer.public_key))
    keyid = signer.public_key.keyid
    if as_json:
        emit_json({"private_key": str(out), "public_key": str(public), "keyid": keyid})
        return
    say("created root key ", (keyid, "bold"), " in ", out, "; give ", public, " to the server")


@app.command("init")
def init(
    root_key: RootKeyOption = None,
    threshold: ThresholdOption = None,
    out: OutOption = None,
    state: StateOption = None,
    as_json: JsonOption = False,
) -> None:
    """Start a repository: unsigned root v1 (k of the given root keys) to sign offline."""
    with reported_errors():
        with needs_extra("keys init", "server"):
            from update_service import key_ceremony, root_metadata
        if not root_key or out is None:
            raise ConfigError("give --root-key (once per root key) and --out FILE")
        keys = _public_keys(root_key)
        store = writable_store(state)
        md = key_ceremony.init_repository(store, root_keys=keys, threshold=threshold or len(keys))
        root_metadata.write_root_file(out, md)
    _report_unsigned(md, out, as_json)


@app.command("sign-root")
def sign_root(
    file: Annotated[Path, typer.Argument(help="The root metadata file; signed in place.")],
    key: Annotated[Path, typer.Option("--key", help="A root key's private PEM file.")],
    previous: Annotated[
        Path | None,
        typer.Option("--previous", help="The root this one follows: list what it changes."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Add a root key's signature to a root metadata file (on the offline machine).

    Prints what is signed: every role's keys and threshold, the expiry, and
    with ``--previous`` what changes from that root. A root whose keys the
    server would refuse (not P-256, or not under their own keyids) is not signed.
    """
    with reported_errors():
        with needs_extra("keys sign-root", "server"):
            from update_service import root_metadata
            from update_service.signing_keys import read_signer
        md = root_metadata.read_root_file(file)
        root_metadata.check_root_keys(md.signed)
        before = root_metadata.read_root_file(previous).signed if previous is not None else None
        signer = read_signer(key)
        root_metadata.sign_root(md, signer)
        root_metadata.write_root_file(file, md)
    keyid = signer.public_key.keyid
    listed = keyid in md.signed.roles["root"].keyids
    summary = root_metadata.describe_root(md.signed)
    changes = root_metadata.root_changes(before, md.signed) if before is not None else None
    if as_json:
        emit_json({"version": md.signed.version, "keyid": keyid, "root_key_of_this_version":
                   listed, "signatures": sorted(md.signatures), "root": summary,
                   "changes": changes})  # fmt: skip
        return
    _show_root(summary, changes)
    say("signed root v", md.signed.version, " with ", (keyid, "bold"), " (",
        len(md.signatures), " signature(s) now)")  # fmt: skip
    if not listed:
        say("note: this key is not a root key of v", md.signed.version,
            "; it counts only if it is one of the previous version's")  # fmt: skip


@app.command("import-root")
def import_root(
    file: Annotated[Path, typer.Argument(help="The signed root metadata file.")],
    state: StateOption = None,
    as_json: JsonOption = False,
) -> None:
    """Install a signed root: refused unless the old and the new root's thresholds signed it.

    Importing the installed root again finishes an import that was interrupted.
    """
    with reported_errors():
        with needs_extra("keys import-root", "server"):
            from update_service import key_ceremony, root_metadata
        md = root_metadata.read_root_file(file)
        imported = key_ceremony.import_root(writable_store(state), md)
    if as_json:
        emit_json(
            {
                "version": imported.version,
                "created": imported.created,
                "resigned": imported.resigned,
                "retired_keys": imported.retired_keys,
                "already_installed": imported.already_installed,
            }
        )
        return
    resigned = ", ".join(imported.resigned) or "nothing (nothing was left to finish)"
    version = (str(imported.version), "bold")
    if imported.created:
        say("created the repository with root v", version, "; re-signed ", resigned)
    elif imported.already_installed:
        say("root v", version, " was installed already; re-signed ", resigned)
    else:
        say("installed root v", version, "; re-signed ", resigned)
    for keyid in imported.retired_keys:
        say("deleted retired online key ", keyid)


@app.command("rotate")
def rotate(
    role: Annotated[str, typer.Argument(help="root, targets, snapshot, timestamp or releases.")],
    root_key: RootKeyOption = None,
    threshold: ThresholdOption = None,
    out: OutOption = None,
    state: StateOption = None,
    as_json: JsonOption = False,
) -> None:
    """New keys for ROLE. Root and top-level roles: the next root, to sign offline and import.

    ``rotate root`` without ``--root-key`` keeps the keys and only renews root's expiry.
    ``releases`` (the key of the model roles) is rotated at once.
    """
    with reported_errors():
        with needs_extra("keys rotate", "server"):
            from update_service import key_ceremony, root_metadata
        if role != "releases" and out is None:
            raise ConfigError("give --out FILE for the root metadata to sign offline")
        keys = _public_keys(root_key) if root_key else None
        store = writable_store(state)
        md = key_ceremony.rotate(store, role, root_keys=keys, threshold=threshold)
        if md is not None and out is not None:
            root_metadata.write_root_file(out, md)
            changes = root_metadata.root_changes(store.reader().root(), md.signed)
    if md is None:
        if as_json:
            emit_json({"role": role, "rotated": True})
        else:
            say("rotated the ", (role, "bold"), " key: every model role and bin re-signed")
        return
    assert out is not None
    _report_unsigned(md, out, as_json, changes)


@app.command("show")
def show_keys(state: StateOption = None, as_json: JsonOption = False) -> None:
    """The live root: each role's keys, threshold and expiry."""
    with reported_errors():
        with needs_extra("keys show", "server"):
            from update_service.release_store import ReleaseStore
        repo = ReleaseStore(state_dir(state)).reader()
        if not repo.root_version():
            raise ConfigError("no repository yet: run `sevenfold keys init`")
        root = repo.root()
        expiries = {"root": root.expires}
        if repo.exists():
            expiries |= {
                "targets": repo.targets().expires,
                "snapshot": repo.snapshot().expires,
                "timestamp": repo.timestamp().expires,
            }
    roles: dict[str, Any] = {
        name: {
            "keyids": role.keyids,
            "threshold": role.threshold,
            "expires": expiries.get(name),
        }
        for name, role in root.roles.items()
    }
    if as_json:
        emit_json({"root_version": root.version, "roles": roles})
        return
    rows = [(name, f"{r['threshold']} of {len(r['keyids'])}", ", ".join(k[:16] for k in
             r["keyids"]), str(r["expires"])) for name, r in roles.items()]  # fmt: skip
    show(literal_table(headers=("role", "threshold", "keys", "expires"),
                       title=f"root v{root.version}", rows=rows))  # fmt: skip


def writable_store(state: Path | None) -> ReleaseStore:
    """The update service's files in the state directory, checked private first."""
    from update_service.release_store import ReleaseStore

    return ReleaseStore(secure_state_directory(state_dir(state)))


def _public_keys(paths: list[Path]) -> list[Any]:
    from update_service.signing_keys import read_public_key

    return [read_public_key(path) for path in paths]


def _public_path(private: Path) -> Path:
    stem = private.name.removesuffix(".pem")
    return private.with_name(f"{stem}.pub.pem")


def _report_unsigned(
    md: Metadata[Root], out: Path, as_json: bool, changes: list[str] | None = None
) -> None:
    root = md.signed
    needed = root.roles["root"]
    if as_json:
        emit_json({"version": root.version, "file": str(out), "threshold": needed.threshold,
                   "root_keys": needed.keyids, "expires": root.expires,
                   "changes": changes})  # fmt: skip
        return
    if changes is not None:
        say("changes from the installed root v", root.version - 1, ": ", len(changes))
        for change in changes:
            say("  ", change)
    say("wrote unsigned root v", root.version, " to ", out, ": sign it with ", needed.threshold,
        " of its ", len(needed.keyids), " root keys (sevenfold keys sign-root --key KEY.pem ",
        out, "), then sevenfold keys import-root ", out)  # fmt: skip
    if root.version > 1:
        say("it also needs the signatures that the current root's threshold requires")


def _show_root(summary: dict[str, Any], changes: list[str] | None) -> None:
    """The root being signed, key by key, and what it changes (when the previous is known)."""
    rows = []
    for name, role in summary["roles"].items():
        for n, keyid in enumerate(role["keyids"]):
            needed = f"{role['threshold']} of {len(role['keyids'])}"
            rows.append((name if n == 0 else "", needed if n == 0 else "", keyid))
    title = f"root v{summary['version']}, expires {summary['expires']}"
    show(literal_table(headers=("role", "threshold", "keyid"), title=title, rows=rows))
    version = summary["version"]
    if changes is None:
        if version > 1:
            say("what changes from root v", version - 1, " is not shown: give --previous FILE")
        return
    say("changes from the previous root: ", len(changes))
    for change in changes:
        say("  ", change)
