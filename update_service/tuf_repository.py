"""The TUF repository on disk: loads the live metadata, signs new versions, writes them.

Built on python-tuf's Metadata API and its ``Repository`` base class, whose
``do_snapshot``/``do_timestamp`` decide when snapshot and timestamp need a new
version. What this class adds is where metadata lives and who signs it:

- The *live* state is what ``timestamp.json`` leads to: the snapshot version it
  names, and the targets versions that snapshot names. Files on disk that the
  live timestamp does not lead to (left by a publisher that was killed) are
  never read. That is what makes a publish all-or-nothing for every reader.
- Consistent snapshots: every version is a new file, ``N.<role>.json``
  (``timestamp.json`` alone keeps its name), and a target is stored under its
  hash, ``<dir>/<sha256>.<name>``, so a client that read one timestamp finds
  exactly the files it names while newer ones are being written.
- A name, once written, never gets other content: the next version of a role
  is the first one no file on disk has yet, so the files a killed publisher
  left are skipped rather than rewritten. They may have been served already
  (the routes serve whatever is on disk, marked immutable, and a CDN keeps
  it), so rewriting them would hand caches two contents for one name.
- The timestamp gives the snapshot's length and SHA-256 besides its version
  (TUF's optional ``length``/``hashes``): a client then checks the snapshot
  it downloads by hash too. The snapshot's own entries give versions only:
  with hashes each entry is about 100 bytes longer, which would triple the
  file that bounds a 64 KiB device's repository (docs/releases.md).
- Every file is replaced atomically (temporary file, fsync, rename, fsync of the
  directory); a publisher writes targets and new role versions first, then the
  snapshot, then the timestamp.
- Online roles (see :mod:`update_service.online_keys`) are signed here with the
  keys their delegator lists; root is never signed here, only installed once an
  operator brought it signed (:mod:`update_service.root_metadata`). Every
  version is verified against its delegator before it is written.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from securesystemslib.signer import CryptoSigner
from tuf.api.exceptions import LengthOrHashMismatchError, RepositoryError
from tuf.api.metadata import (
    Delegations,
    Key,
    Metadata,
    MetaFile,
    Root,
    Signed,
    Snapshot,
    SuccinctRoles,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization import DeserializationError
from tuf.api.serialization.json import JSONSerializer
from tuf.repository import Repository

from device_runtime.core.errors import ConfigError, CryptoError, StorageError
from device_runtime.ports.cpython.atomic_file import write_atomic

TOP_LEVEL = ("root", "targets", "snapshot", "timestamp")
BIN_MARK = "_bin-"
"""What every hashed bin's role name holds and no model's can (``hashed_bins``)."""
EXPIRY = {
    "root": timedelta(days=365),
    "targets": timedelta(days=365),
    "snapshot": timedelta(days=7),
    "timestamp": timedelta(days=1),
}
DELEGATED_EXPIRY = timedelta(days=365)
"""Model roles and their bins: re-signed by the keeper long before they run out."""

RELEASES = "releases"
"""The online key that signs every model role and bin."""

PUBLIC_FILE_MODE = 0o644
"""Repository files are public by design (signed, not secret) and may be synced to a CDN."""

_SERIALIZER = JSONSerializer(compact=True)


class RepositoryMissing(ConfigError):
    """No repository has been created in this state directory yet."""

    code = "no-repository"


def expiry_period(role: str) -> timedelta:
    return EXPIRY.get(role, DELEGATED_EXPIRY)


class TufRepository(Repository):
    """One repository directory (``metadata/`` and ``targets/``) and the keys that sign it.

    Not thread-safe. A writer holds the publish lock
    (:mod:`update_service.publish_lock`) for the object's lifetime, because its
    cache of the live state is only true while nobody else writes; a reader
    needs no lock, since every file the live timestamp leads to is complete
    before that timestamp is written and is never replaced afterwards.
    """

    def __init__(
        self,
        directory: Path,
        *,
        signers: Callable[[str, list[str]], list[CryptoSigner]],
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.directory = directory
        self.metadata_dir = directory / "metadata"
        self.targets_dir = directory / "targets"
        self._signers = signers
        self._now = now
        self._cache: dict[str, Metadata[Any]] = {}
        self._targets_infos: dict[str, MetaFile] | None = None
        self._snapshot_file: MetaFile | None = None
        """Version, length and hash of the snapshot file the timestamp is to name."""
        self._bin_owner: dict[str, str] = {}
        self.written: list[Path] = []
        """Every file this object wrote, in order: what a publish reports."""
        self.signed_by_previous_root: set[str] = set()
        """Top-level roles whose live signatures verify only under the previous root."""
        self.incoming: Root | None = None
        """A root about to be installed: see :meth:`close` and
        :func:`update_service.key_ceremony.import_root`."""
        self._previous_root: Root | None = None

    # -- the live state ----------------------------------------------------------------

    def exists(self) -> bool:
        return (self.metadata_dir / "timestamp.json").is_file()

    def root_version(self) -> int:
        """The newest ``N.root.json`` (0 when there is none).

        Found by probing 1, 2, 3...: root versions are few and consecutive, while
        the directory holds every version of every role, so listing it would make
        each publish slower as the repository ages.
        """
        version = 0
        while (self.metadata_dir / f"{version + 1}.root.json").is_file():
            version += 1
        return version

    def open(self, role: str) -> Metadata[Any]:
        """The live metadata of *role*, or a version 0 to build from when it has none.

        The object is the cached one, so an edit changes it in place; every edit
        here ends in :meth:`close`, which writes it.
        """
        cached = self._cache.get(role)
        if cached is not None:
            return cached
        md = self._load(role)
        if md is None:
            signed: Signed = {
                "root": Root, "snapshot": Snapshot, "timestamp": Timestamp
            }.get(role, Targets)()  # fmt: skip
            signed.version = 0
            md = Metadata(signed)
        self._cache[role] = md
        return md

    def _load(self, role: str) -> Metadata[Any] | None:
        """*role*'s live metadata read from disk and checked: what the service signed, or refused.

        Every role but root is checked against what leads to it: the
        timestamp's signatures against root, the snapshot's file against the
        length and hash the timestamp gives (its signatures, for a timestamp
        that gives none), a targets role's version against the snapshot's and
        its signatures against its delegator. So a file edited on disk is
        never built on, re-signed or reported as if the service had signed it.
        """
        if role == "root":
            version = self.root_version()
            return self._read(f"{version}.root.json", role)[0] if version else None
        if not self.exists():
            return None
        if role == "timestamp":
            md, _ = self._read("timestamp.json", role)
            self._check_signatures(role, md)
            return md
        if role == "snapshot":
            meta = self.timestamp().snapshot_meta
        else:
            found = self.snapshot().meta.get(f"{role}.json")
            if found is None:
                return None
            meta = found
        md, data = self._read(f"{meta.version}.{role}.json", role)
        if md.signed.version != meta.version:
            raise CryptoError(
                f"{meta.version}.{role}.json holds {role} v{md.signed.version}: changed outside"
                " the service; restore it from a backup"
            )
        pinned = meta.length is not None or meta.hashes is not None
        if pinned:
            try:
                meta.verify_length_and_hashes(data)
            except LengthOrHashMismatchError as exc:
                raise CryptoError(
                    f"{meta.version}.{role}.json is not the file the live metadata pins ({exc}):"
                    " changed outside the service; restore it from a backup"
                ) from exc
        # The top-level targets role is pinned too, but its signatures still say whether a
        # root import rotated its key and died before re-signing it.
        if not pinned or role == "targets":
            self._check_signatures(role, md)
        return md

    def _check_signatures(self, role: str, md: Metadata[Any]) -> None:
        """*md* verifies under its delegator, or (top-level roles) under the previous root.

        The previous root's keys are accepted for one reason: a root import
        that rotated an online key and died before re-signing with the new
        one (:data:`signed_by_previous_root` then says the role is due). Any
        other signature that fails means the file was not written by the
        service, and it is refused rather than re-signed.
        """
        try:
            self.delegator(role).verify_delegate(role, md.signed_bytes, md.signatures)
            return
        except RepositoryError as exc:
            failure = exc
        previous = self.previous_root() if role in TOP_LEVEL else None
        if previous is not None:
            try:
                previous.verify_delegate(role, md.signed_bytes, md.signatures)
            except RepositoryError:
                pass
            else:
                self.signed_by_previous_root.add(role)
                return
        raise CryptoError(
            f"the live {role} v{md.signed.version} does not verify ({failure}): it was changed"
            " outside the service, and nothing is signed over it; restore it from a backup"
        )

    def previous_root(self) -> Root | None:
        """The root before the newest, if there is one."""
        version = self.root_version() - 1
        if version < 1:
            return None
        if self._previous_root is None or self._previous_root.version != version:
            self._previous_root = self._read(f"{version}.root.json", "root")[0].signed
        return self._previous_root

    def _read(self, name: str, role: str) -> tuple[Metadata[Any], bytes]:
        path = self.metadata_dir / name
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise StorageError(f"live metadata {path} cannot be read: {exc.strerror}") from exc
        try:
            md: Metadata[Any] = Metadata.from_bytes(data)
        except DeserializationError as exc:
            raise StorageError(f"live metadata {path} is not TUF metadata: {exc}") from exc
        expected = role if role in TOP_LEVEL else "targets"
        if md.signed.type != expected:
            raise StorageError(f"{path} holds {md.signed.type} metadata, not {expected}")
        if role == "snapshot":
            self._snapshot_file = _file_info(md.signed.version, data)
        return md, data

    @property
    def targets_infos(self) -> dict[str, MetaFile]:
        """Versions of every targets role, as the live snapshot has them plus this session's."""
        if self._targets_infos is None:
            live = self.snapshot().meta if self.exists() else {}
            self._targets_infos = {
                name: MetaFile(meta.version, meta.length, meta.hashes)
                for name, meta in live.items()
            }
        return self._targets_infos

    @property
    def snapshot_info(self) -> MetaFile:
        version = self.open("snapshot").signed.version
        if self._snapshot_file is None or self._snapshot_file.version != version:
            return MetaFile(version)  # no snapshot file yet
        return self._snapshot_file

    # -- signing and writing -----------------------------------------------------------

    def close(self, role: str, md: Metadata[Any]) -> None:
        """Bump the version, set the expiry, sign with the delegator's keys, verify, write.

        While a root is :attr:`incoming`, a top-level role is signed with the
        keys of both roots (those of the current one this server still holds)
        and verified under the incoming one.
        """
        if role == "root":
            raise CryptoError("root is signed offline; import it with `sevenfold keys import-root`")
        md.signed.version = self._unused_version(role, md.signed.version + 1)
        md.signed.expires = (self._now() + expiry_period(role)).replace(microsecond=0)
        delegator: Root | Targets = self.delegator(role)
        keyids = delegator.get_delegated_role(role).keyids
        if role in TOP_LEVEL and self.incoming is not None:
            delegator = self.incoming
            incoming = delegator.get_delegated_role(role).keyids
            keyids = [*keyids, *(keyid for keyid in incoming if keyid not in keyids)]
        signers = self._signers(role if role in TOP_LEVEL else RELEASES, keyids)
        if not signers:
            raise CryptoError(f"this server holds none of the keys {role} is delegated to")
        # Canonical JSON is the costly part of signing a large snapshot: encode once.
        payload = md.signed_bytes
        md.signatures.clear()
        for signer in signers:
            signature = signer.sign(payload)
            md.signatures[signature.keyid] = signature
        try:
            delegator.verify_delegate(role, payload, md.signatures)
        except RepositoryError as exc:
            raise CryptoError(f"{role} v{md.signed.version} does not verify: {exc}") from exc
        name = "timestamp.json" if role == "timestamp" else f"{md.signed.version}.{role}.json"
        data = md.to_bytes(_SERIALIZER)
        self.write(self.metadata_dir / name, data)
        self._cache[role] = md
        if role == "snapshot":
            self._snapshot_file = _file_info(md.signed.version, data)
        if role not in ("snapshot", "timestamp"):
            # A model's role (and the top-level targets) is pinned by hash as well as by
            # version: a role's document does not name its role, and every model role is
            # signed by the same release key, so by version alone a mirror could serve one
            # model's role in place of another's of the same version, and the device would
            # see nothing published. Bins are not: they are many (the snapshot a device
            # parses would double), and a swapped bin hides an image, which the device
            # reports as an unknown target.
            pinned = BIN_MARK not in role
            info = _file_info(md.signed.version, data) if pinned else MetaFile(md.signed.version)
            self.targets_infos[f"{role}.json"] = info

    def _unused_version(self, role: str, version: int) -> int:
        """*version*, or the first after it that no file of *role* on disk has yet.

        Probed one by one: the files a killed publisher left are the live
        version's next few, if any (each later publish starts past them).
        """
        if role == "timestamp":
            return version
        while (self.metadata_dir / f"{version}.{role}.json").exists():
            version += 1
        return version

    def install_root(self, md: Metadata[Root]) -> None:
        """Write an operator-signed root as ``N.root.json`` (its checks are the caller's)."""
        self.write(self.metadata_dir / f"{md.signed.version}.root.json", md.to_bytes(_SERIALIZER))
        self._cache["root"] = md
        self.incoming = None

    def write(self, path: Path, data: bytes) -> None:
        write_atomic(path, data, mode=PUBLIC_FILE_MODE)
        self.written.append(path)

    def store_target(self, path: str, data: bytes) -> TargetFile:
        """Store *data* under its hash-prefixed name (written before any metadata names it)."""
        target = TargetFile.from_data(path, data)
        directory, _, name = path.rpartition("/")
        stored = self.targets_dir / directory / f"{target.hashes['sha256']}.{name}"
        if not stored.is_file() or stored.stat().st_size != len(data):
            self.write(stored, data)
        return target

    # -- delegation tree ---------------------------------------------------------------

    def delegator(self, role: str) -> Root | Targets:
        """Who delegates *role*: root for the top-level roles, targets or a model role below."""
        if role in TOP_LEVEL:
            return self.root()
        targets = self.targets()
        if targets.delegations is not None and role in (targets.delegations.roles or {}):
            return targets
        owner = self._bin_owner.get(role)
        if owner is None:
            raise ConfigError(f"{role!r} is not delegated by any role of this repository")
        return self.targets(owner)

    def model_roles(self) -> list[str]:
        delegations = self.targets().delegations
        return sorted((delegations.roles or {}) if delegations is not None else {})

    def bins(self, role: str) -> SuccinctRoles | None:
        """The hashed bins under model role *role*, if it has any; learns who owns them."""
        delegations = self.targets(role).delegations
        if delegations is None or delegations.succinct_roles is None:
            return None
        succinct = delegations.succinct_roles
        for name in succinct.get_roles():
            self._bin_owner[name] = role
        return succinct

    def leaves(self, role: str) -> Iterator[str]:
        """*role* and every bin under it: where its targets live."""
        yield role
        succinct = self.bins(role)
        if succinct is not None:
            yield from succinct.get_roles()

    def leaf_for(self, role: str, path: str) -> str:
        """The role that holds (or would hold) target *path* under model role *role*."""
        succinct = self.bins(role)
        return role if succinct is None else succinct.get_role_for_target(path)

    def delegate_bins(self, role: str, succinct: SuccinctRoles, keys: dict[str, Key]) -> None:
        """Point model role *role* at *succinct*; its bins are signed after this call."""
        for name in succinct.get_roles():
            self._bin_owner[name] = role
        self.targets(role).delegations = Delegations(keys=keys, roles=None, succinct_roles=succinct)


def _file_info(version: int, data: bytes) -> MetaFile:
    return MetaFile(version, length=len(data), hashes={"sha256": hashlib.sha256(data).hexdigest()})
