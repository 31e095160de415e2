"""The metadata this client trusts now, and the rules for replacing any of it (spec 5.3-5.6).

Each ``update_*`` takes the bytes of a new document, checks it against what is
already trusted (signatures by the delegating role's keys, version rules
against rollback, hashes and lengths the parent announced, expiry against the
one reference time taken at the start) and keeps it, or raises a ``TufError``
and keeps what it had. As in python-tuf, a timestamp or snapshot that passes
every check but expiry or the version its parent names is kept all the same,
so it still guards the next one against rollback, and the error is raised
after. The caller checks each file's length and hashes as it streams in
(``file_check``). Delegated targets are kept with the role that delegated them: a role
reached again through another delegator is checked again against that one.
"""

from device_runtime.core.tuf import keys
from device_runtime.core.tuf.error import TufError
from device_runtime.core.tuf.metadata import Metadata

TYPE_CHECKING = False
if TYPE_CHECKING:
    from device_runtime.core.port_types import BinaryFile, TufCrypto

    Source = bytes | BinaryFile


def _compact_keys(container: object) -> None:
    """Keep a trusted document's keys as ``keys.usable`` has them (see there why)."""
    if isinstance(container, dict) and isinstance(container.get("keys"), dict):
        found = container["keys"]
        for keyid in list(found):
            found[keyid] = keys.usable(found[keyid])


class TrustedSet:
    """Starts from a trusted root (checked against its own keys); *now* is the reference time."""

    def __init__(self, root_data: "Source", now: int, crypto: "TufCrypto") -> None:
        self.now = now
        self.crypto = crypto
        root = Metadata(root_data, "root")
        root.verify_by(root.signed, self._role(root, "root"), crypto)
        root.signatures = {}  # counted: a small heap need not keep them
        _compact_keys(root.signed)
        self.root = root
        self.timestamp: Metadata | None = None
        self.snapshot: Metadata | None = None
        self.targets: dict[str, tuple[Metadata, str]] = {}

    @staticmethod
    def _role(root: Metadata, name: str) -> "dict[str, object]":
        roles = root.signed.get("roles")
        if not isinstance(roles, dict):
            raise TufError("bad-metadata", "an earlier root update failed: start again")
        role = roles[name]
        assert isinstance(role, dict)
        return role

    def _check_expiry(self, metadata: Metadata, what: str) -> None:
        if self.now >= metadata.expires:
            raise TufError("expired", what + " " + metadata.role_type + " has expired")

    def _load(self, data: "Source", role_type: str) -> Metadata:
        new = Metadata(data, role_type)
        new.verify_by(self.root.signed, self._role(self.root, role_type), self.crypto)
        new.signatures = {}
        return new

    def update_root(self, data: "Source") -> None:
        """Spec 5.3.4-5.3.8: signed by the old root's and its own threshold, version + 1.

        Before the new root is parsed the old one is cut down to its root role's
        keys, so a small heap never holds two whole roots; if the new one is then
        refused, this set is spent (it has no roles left) and the refresh fails, as it must.
        """
        role = self._role(self.root, "root")
        old_keys = self.root.signed["keys"]
        assert isinstance(old_keys, dict) and isinstance(role["keyids"], list)
        self.root.signed = {"keys": {k: old_keys[k] for k in role["keyids"] if k in old_keys}}
        old_keys = {}
        new = Metadata(data, "root")
        new.verify_by(self.root.signed, role, self.crypto)
        if new.version != self.root.version + 1:
            raise TufError(
                "rollback",
                "root version " + str(new.version) + " does not follow " + str(self.root.version),
            )
        new.verify_by(new.signed, self._role(new, "root"), self.crypto)
        new.signatures = {}
        _compact_keys(new.signed)
        self.root = new

    def snapshot_meta(self, timestamp: "Metadata | None" = None) -> "dict[str, object]":
        """What the trusted timestamp (or *timestamp*) says of snapshot.json."""
        timestamp = timestamp or self.timestamp
        assert timestamp is not None
        meta = timestamp.signed["meta"]
        assert isinstance(meta, dict)
        info = meta["snapshot.json"]
        assert isinstance(info, dict)
        return info

    def update_timestamp(self, data: "Source") -> bool:
        """Spec 5.4; False when it is the version already trusted (kept, not an error)."""
        self._check_expiry(self.root, "final")
        new = self._load(data, "timestamp")
        old = self.timestamp
        if old is not None:
            if new.version < old.version:
                raise TufError(
                    "rollback", "timestamp version " + str(new.version) + " < " + str(old.version)
                )
            if new.version == old.version:
                return False
            new_version, old_version = (
                self.snapshot_meta(new)["version"],
                self.snapshot_meta()["version"],
            )
            assert isinstance(new_version, int) and isinstance(old_version, int)
            if new_version < old_version:
                raise TufError("rollback", "timestamp names an older snapshot version")
        self.timestamp = new
        self._check_expiry(new, "new")
        return True

    def update_snapshot(self, data: "Source") -> None:
        """Spec 5.5; the caller checked *data* against the timestamp's length and hashes."""
        assert self.timestamp is not None
        self._check_expiry(self.timestamp, "final")
        new = self._load(data, "snapshot")
        old = self.snapshot
        if old is not None:
            new_meta, old_meta = new.signed["meta"], old.signed["meta"]
            assert isinstance(new_meta, dict) and isinstance(old_meta, dict)
            for name, old_info in old_meta.items():
                new_info = new_meta.get(name)
                if new_info is None:
                    raise TufError("rollback", "snapshot no longer lists " + name[:60])
                if new_info["version"] < old_info["version"]:
                    raise TufError("rollback", "snapshot lists an older version of " + name[:60])
        self.snapshot = new
        self._check_final_snapshot()

    def _check_final_snapshot(self) -> None:
        assert self.snapshot is not None
        self._check_expiry(self.snapshot, "final")
        if self.snapshot.version != self.snapshot_meta()["version"]:
            raise TufError("mismatch", "snapshot version is not the one the timestamp names")

    def role_meta(self, role: str) -> "dict[str, object]":
        """What the trusted snapshot says of *role*'s metadata file."""
        assert self.snapshot is not None
        meta = self.snapshot.signed["meta"]
        assert isinstance(meta, dict)
        info = meta.get(role + ".json")
        if not isinstance(info, dict):
            raise TufError("bad-metadata", "snapshot does not list role " + repr(role)[:60])
        return info

    def update_targets(self, data: "Source", role: str, delegator: str) -> Metadata:
        """Spec 5.6: *role*'s targets, signed as *delegator* (``root`` or a targets role) says;
        the caller checked *data* against the snapshot's length and hashes."""
        self._check_final_snapshot()
        info = self.role_meta(role)
        new = Metadata(data, "targets")
        if delegator == "root":
            new.verify_by(self.root.signed, self._role(self.root, "targets"), self.crypto)
        else:
            parent = self.targets[delegator][0].signed["delegations"]
            assert isinstance(parent, dict)
            roles = parent["roles"]
            assert isinstance(roles, list)
            delegation = [r for r in roles if r["name"] == role][0]
            new.verify_by(parent, delegation, self.crypto)
        new.signatures = {}
        _compact_keys(new.signed.get("delegations"))
        if new.version != info["version"]:
            raise TufError("mismatch", role[:60] + " version is not the one the snapshot names")
        self._check_expiry(new, "new")
        self.targets[role] = (new, delegator)
        return new
