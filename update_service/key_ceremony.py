"""Creating the repository and rotating its keys: the server's half of every key ceremony.

The server never holds a root key. It prepares root metadata (the first, or
the next version naming new keys), the operators sign it offline, and
:func:`import_root` installs it once TUF's thresholds hold, having first
re-signed what the new root changes (for both roots, so that an import killed
at any write leaves every client a repository it accepts, and running it
again finishes it). Online keys are generated here for the new root to
name, and take over only when a root naming them is imported; the release
key, which top-level targets (online) delegates to, is rotated at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from tuf.api.metadata import Delegations, Key, Metadata, Root

from device_runtime.core.errors import ConfigError, CryptoError
from update_service.online_keys import ONLINE_ROLES
from update_service.release_store import ReleaseStore
from update_service.root_metadata import check_new_root, first_root, next_root
from update_service.tuf_repository import RELEASES, RepositoryMissing, TufRepository

ONLINE_TOP_LEVEL = ("targets", "snapshot", "timestamp")
ROTATABLE = ("root", *ONLINE_ROLES)


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportedRoot:
    version: int
    created: bool
    """True when this import created the repository (version 1)."""
    resigned: list[str]
    retired_keys: list[str]
    already_installed: bool = False
    """The root was installed before: this import finished what a killed one left."""


def init_repository(
    store: ReleaseStore, *, root_keys: list[Key], threshold: int, now: datetime | None = None
) -> Metadata[Root]:
    """Root v1, unsigned, naming *root_keys* (threshold *threshold*) and fresh online keys."""
    with store.writer() as repo:
        if repo.root_version():
            raise ConfigError(
                f"this state directory has a repository already (root v{repo.root_version()});"
                " rotate keys with `sevenfold keys rotate ROLE`"
            )
        keys = store.keys
        online = {}
        for role in ONLINE_ROLES:
            keys.discard(role, keep=set())
            online[role] = keys.generate(role)
        del online[RELEASES]
        return first_root(
            root_keys=root_keys, threshold=threshold, online=online, now=now or _now()
        )


def import_root(
    store: ReleaseStore, md: Metadata[Root], *, now: datetime | None = None
) -> ImportedRoot:
    """Install *md* if it may follow the current root, and re-sign what its keys changed.

    The roles a rotation changes are re-signed before the new root is written,
    with the keys of both roots, so that whatever write a killed import
    stopped at, a client trusting either root accepts the live metadata; the
    root is the last file written. Importing the installed root again (the
    same signed part) finishes what an import killed in between left, or
    what an older release of the service left (it wrote the root first): it
    re-signs the roles only the previous root's keys signed, and deletes the
    retired keys.
    """
    now = now or _now()
    with store.writer() as repo:
        installed = repo.open("root") if repo.root_version() else None
        if installed is not None and md.signed_bytes == installed.signed_bytes:
            return _finish(store, repo, md, now)
        previous = installed.signed if installed is not None else None
        new = check_new_root(md, previous=previous, now=now)
        _require_online_keys(store, new)
        if previous is None:
            repo.install_root(md)
            resigned = _create(repo)
        else:
            resigned = _resign_for(repo, previous, new)
            repo.install_root(md)
        retired = []
        for role in ONLINE_TOP_LEVEL:
            retired += store.keys.discard(role, keep=set(new.roles[role].keyids))
        return ImportedRoot(
            version=new.version, created=previous is None, resigned=resigned, retired_keys=retired
        )


def _require_online_keys(store: ReleaseStore, new: Root) -> None:
    for role in ONLINE_TOP_LEVEL:
        delegated = new.roles[role]
        held = store.keys.signers(role, delegated.keyids)
        if len(held) < delegated.threshold:
            raise CryptoError(
                f"root v{new.version} gives {role} to keys this server does not hold"
                f" ({len(held)} of {delegated.threshold}); prepare rotations with"
                " `sevenfold keys rotate`"
            )


def _resign_for(repo: TufRepository, previous: Root, new: Root) -> list[str]:
    """Sign what *new* changes for both roots, before *new* is installed; the roles signed."""
    for role in ONLINE_TOP_LEVEL:
        repo.open(role)  # loaded, and checked, under the root that signed it
    changed = [
        role
        for role in ONLINE_TOP_LEVEL
        if set(new.roles[role].keyids) != set(previous.roles[role].keyids)
    ]
    repo.incoming = new
    resigned = []
    if "targets" in changed:
        with repo.edit_targets():
            pass
        resigned.append("targets")
    if repo.do_snapshot(force="snapshot" in changed)[0]:
        resigned.append("snapshot")
    repo.do_timestamp(force=True)
    return [*resigned, "timestamp"]


def _finish(
    store: ReleaseStore, repo: TufRepository, md: Metadata[Root], now: datetime
) -> ImportedRoot:
    """Complete the import of the installed root *md*: what a killed import left undone."""
    previous = repo.previous_root()
    new = check_new_root(md, previous=previous, now=now)
    if previous is None:  # version 1: the repository may not have been created yet
        created = not repo.exists()
        resigned = _create(repo) if created else []
        return ImportedRoot(version=1, created=created, resigned=resigned, retired_keys=[],
                            already_installed=True)  # fmt: skip
    _require_online_keys(store, new)
    for role in ONLINE_TOP_LEVEL:
        repo.open(role)  # a role only the previous root's keys signed is noted as stale
    resigned = []
    if "targets" in repo.signed_by_previous_root:
        with repo.edit_targets():
            pass
        resigned.append("targets")
    if repo.do_snapshot()[0]:
        resigned.append("snapshot")
    if repo.do_timestamp()[0]:
        resigned.append("timestamp")
    retired = []
    for role in ONLINE_TOP_LEVEL:
        gone = set(previous.roles[role].keyids) - set(new.roles[role].keyids)
        retired += store.keys.discard(role, keep=store.keys.keyids(role) - gone)
    return ImportedRoot(version=new.version, created=False, resigned=resigned,
                        retired_keys=retired, already_installed=True)  # fmt: skip


def rotate(
    store: ReleaseStore,
    role: str,
    *,
    root_keys: list[Key] | None = None,
    threshold: int | None = None,
    now: datetime | None = None,
) -> Metadata[Root] | None:
    """Start rotating *role*'s keys.

    For root and the top-level online roles: the next root version, unsigned,
    to be signed offline and imported (for root, by the old threshold and the
    new). For ``releases``: done at once (targets is online), None returned.
    """
    if role not in ROTATABLE:
        raise ConfigError(f"cannot rotate {role!r}: the roles are {', '.join(ROTATABLE)}")
    if role != "root" and (root_keys or threshold is not None):
        raise ConfigError("--root-key and --threshold are for rotating root only")
    with store.writer() as repo:
        if not repo.exists():
            raise RepositoryMissing("no repository to rotate keys in: run `sevenfold keys init`")
        current = repo.root()
        if role == RELEASES:
            _rotate_releases(store, repo)
            return None
        if role == "root":
            replace = {"root": root_keys} if root_keys else None
            return next_root(current, now=now or _now(), replace=replace, root_threshold=threshold)
        store.keys.discard(role, keep=set(current.roles[role].keyids))
        return next_root(current, now=now or _now(), replace={role: [store.keys.generate(role)]})


def _create(repo: TufRepository) -> list[str]:
    with repo.edit_targets() as targets:
        targets.delegations = Delegations(keys={}, roles={})
    repo.do_snapshot()
    repo.do_timestamp()
    return ["targets", "snapshot", "timestamp"]


def _rotate_releases(store: ReleaseStore, repo: TufRepository) -> None:
    """A new release key: targets re-delegates every model role, which re-signs its bins."""
    old = store.keys.keyids(RELEASES)
    new = store.keys.generate(RELEASES)
    models = repo.model_roles()
    for name in models:  # loaded (and checked) while their delegations still name the old key
        for leaf in repo.leaves(name):
            repo.open(leaf)
    with repo.edit_targets() as targets:
        delegations = targets.delegations
        assert delegations is not None and delegations.roles is not None
        for keyid in old:
            delegations.keys.pop(keyid, None)
        delegations.keys[new.keyid] = new
        for name in models:
            delegations.roles[name].keyids = [new.keyid]
    for name in models:
        succinct = repo.bins(name)
        if succinct is not None:
            succinct.keyids = [new.keyid]
            model_delegations = repo.targets(name).delegations
            assert model_delegations is not None
            model_delegations.keys = {new.keyid: new}
            for bin_name in succinct.get_roles():
                with repo.edit_targets(bin_name):
                    pass
        with repo.edit_targets(name):
            pass
    repo.do_snapshot()
    repo.do_timestamp()
    store.keys.discard(RELEASES, keep={new.keyid})


def _now() -> datetime:
    return datetime.now(UTC)
