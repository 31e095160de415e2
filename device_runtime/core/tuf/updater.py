"""The TUF client workflow (spec 5): refresh the top-level metadata, find and fetch targets.

Every port is handed in: *fetcher* (``http_client.http_get``'s signature),
*metadata_store* and *targets_store* (``file_directory.FileDirectory``'s
calls), *crypto* (``sha256`` and ``verify_ecdsa_der``), *clock*
(``unix_time``, read once: the reference time of this whole run). Nothing is
held whole in memory but parsed metadata: every file streams from the
fetcher to a partial file, its size capped by *limits* (or the length its
parent lists) before any byte is kept and its hashes taken on the way, is
parsed from that file and replaces the trusted one only once it is trusted.
The stored files are the repository's own bytes, under the role's quoted name.
"""

from device_runtime.core.errors import SevenfoldError, TooLarge
from device_runtime.core.tuf import delegations
from device_runtime.core.tuf.error import TufError
from device_runtime.core.tuf.file_check import FileCheck
from device_runtime.core.tuf.metadata import Metadata
from device_runtime.core.tuf.names import quote
from device_runtime.core.tuf.trusted_set import TrustedSet

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from device_runtime.core.port_types import (
        BinaryFile,
        Clock,
        Fetcher,
        FileStore,
        HttpBody,
        TufCrypto,
    )

CHUNK = 2048


class Limits:
    """The most any document may be, in bytes, and how far the workflow may go.

    The defaults fit a device with a 64 KiB heap, where a document is parsed
    whole; a port with more memory passes larger ones.
    """

    def __init__(
        self,
        *,
        root: int = 16 * 1024,
        timestamp: int = 4 * 1024,
        snapshot: int = 16 * 1024,
        targets: int = 16 * 1024,
        max_root_rotations: int = 256,
        max_delegations: int = 32,
        timeout_s: float = 30.0,
    ) -> None:
        self.root = root
        self.timestamp = timestamp
        self.snapshot = snapshot
        self.targets = targets
        self.max_root_rotations = max_root_rotations
        self.max_delegations = max_delegations
        self.timeout_s = timeout_s


class TargetInfo:
    """A target as the trusted metadata describes it."""

    def __init__(self, path: str, info: "dict[str, object]") -> None:
        self.path = path
        length, hashes = info["length"], info["hashes"]
        assert isinstance(length, int) and isinstance(hashes, dict)
        self.length = length
        self.hashes: dict[str, str] = hashes
        self.info = info
        custom = info.get("custom")
        self.custom: dict[str, object] = custom if isinstance(custom, dict) else {}


class Updater:
    def __init__(
        self,
        *,
        metadata_store: "FileStore",
        fetcher: "Fetcher",
        crypto: "TufCrypto",
        clock: "Clock",
        metadata_url: str,
        targets_store: "FileStore | None",
        targets_url: "str | None",
        limits: "Limits",
    ) -> None:
        self._store = metadata_store
        self._fetcher = fetcher
        self._metadata_url = metadata_url.rstrip("/") + "/"
        self._targets_store = targets_store
        self._targets_url = (targets_url or "").rstrip("/") + "/"
        self._limits = limits
        root = metadata_store.open_verified("root.json")
        if root is None:
            raise TufError("bad-metadata", "no trusted root.json in the metadata store")
        self._refreshed = False
        try:
            self._trusted = TrustedSet(root, clock.unix_time(), crypto)
        except MemoryError:
            raise TufError("too-large", "root does not fit in this device's memory") from None
        finally:
            root.close()

    def _open(self, url: str, max_length: int, what: str) -> "HttpBody":
        """A 200 answer to GET *url*, its body refused past *max_length*."""
        try:
            response = self._fetcher(url, max_length=max_length, timeout_s=self._limits.timeout_s)
        except TooLarge as exc:
            raise TufError("too-large", what + ": " + exc.reason) from None
        except SevenfoldError as exc:
            raise TufError("http-status", what + ": " + exc.reason) from None
        if response.status != 200:
            response.close()
            raise TufError(
                "http-status", what + " answered HTTP " + str(response.status), response.status
            )
        return response

    @staticmethod
    def _read(response: "HttpBody", what: str) -> bytes:
        try:
            return response.read(CHUNK)
        except TooLarge as exc:
            raise TufError("too-large", what + ": " + exc.reason) from None
        except SevenfoldError as exc:
            raise TufError("http-status", what + ": " + exc.reason) from None

    def _download(
        self, url: str, store: "FileStore", name: str, check: "FileCheck", limit: int
    ) -> None:
        """Stream *url* into *store*'s partial file of *name*, through *check*."""
        response = self._open(url, limit, name)
        handle = store.open_partial(name)
        try:
            while True:
                part = self._read(response, name)
                if not part:
                    break
                check.update(part)
                handle.write(part)
            check.finish()
        except BaseException:
            handle.close()
            store.discard(name)
            raise
        finally:
            response.close()
        handle.close()

    def _update(self, name: str, apply: "Callable[[BinaryFile], object]") -> None:
        """Parse the partial file of *name* through *apply*; keep it if that trusts it."""
        handle = self._store.reopen_partial(name)
        try:
            apply(handle)
        except BaseException:
            handle.close()
            self._store.discard(name)
            raise
        handle.close()
        self._store.commit(name)

    def _stored(
        self, name: str, info: "dict[str, object] | None", limit: int
    ) -> "BinaryFile | None":
        """The trusted file *name*, at most *limit* bytes and matching *info* when given."""
        handle = self._store.open_verified(name)
        if handle is None:
            return None
        try:
            check = FileCheck(info or {}, name)
            while check.size <= limit:
                part = handle.read(CHUNK)
                if not part:
                    break
                check.update(part)
            if check.size > limit:
                raise TufError("too-large", "stored " + name + " is over the limit")
            check.finish()
        except TufError:
            handle.close()
            return None
        handle.seek(0)
        return handle

    def _fetch(
        self,
        name: str,
        url_name: str,
        info: "dict[str, object] | None",
        limit: int,
        apply: "Callable[[BinaryFile], object]",
        missing_ok: bool = False,
    ) -> bool:
        """Download metadata *name* and hand it to *apply*; False if *missing_ok* and absent."""
        length = info.get("length") if info else None
        if isinstance(length, int) and length:
            limit = length
        check = FileCheck(info or {}, name)
        try:
            self._download(self._metadata_url + url_name, self._store, name, check, limit)
        except TufError as exc:
            if missing_ok and exc.status in (403, 404):
                return False
            raise
        self._update(name, apply)
        return True

    def refresh(self) -> None:
        """Spec 5.3-5.6 for the top-level roles: root chain, timestamp, snapshot, targets."""
        try:
            self._refresh()
        except MemoryError:
            raise TufError("too-large", "metadata does not fit in this device's memory") from None
        self._refreshed = True

    def _refresh(self) -> None:
        self._load_root()
        self._load_timestamp()
        self._load_snapshot()
        self._targets("targets", "root")

    def _load_root(self) -> None:
        """Spec 5.3: each next root version in turn, until the server has none."""
        first = self._trusted.root.version + 1
        for version in range(first, first + self._limits.max_root_rotations):
            url_name = str(version) + ".root.json"
            update = self._trusted.update_root
            if not self._fetch("root.json", url_name, None, self._limits.root, update, True):
                return

    def _load_timestamp(self) -> None:
        """Spec 5.4: the stored timestamp only guards against rollback; the server's is fetched."""
        stored = self._stored("timestamp.json", None, self._limits.timestamp)
        if stored is not None:
            try:
                self._trusted.update_timestamp(stored)
            except TufError:
                pass
            finally:
                stored.close()
        check = FileCheck({}, "timestamp.json")
        url = self._metadata_url + "timestamp.json"
        self._download(url, self._store, "timestamp.json", check, self._limits.timestamp)
        handle = self._store.reopen_partial("timestamp.json")
        try:
            fresh = self._trusted.update_timestamp(handle)
        except BaseException:
            handle.close()
            self._store.discard("timestamp.json")
            raise
        handle.close()
        # The version already trusted is kept as it is stored (spec 5.4.3).
        (self._store.commit if fresh else self._store.discard)("timestamp.json")

    def _load_snapshot(self) -> None:
        """Spec 5.5: the stored snapshot if it is the one the timestamp names, else the server's."""
        stored = self._stored("snapshot.json", None, self._limits.snapshot)
        try:
            if stored is None:
                raise TufError("bad-metadata", "no stored snapshot")
            self._trusted.update_snapshot(stored)
            return
        except TufError:
            pass
        finally:
            if stored is not None:
                stored.close()
        info = self._trusted.snapshot_meta()
        url_name = self._versioned(info) + "snapshot.json"
        self._fetch(
            "snapshot.json", url_name, info, self._limits.snapshot, self._trusted.update_snapshot
        )

    def _versioned(self, info: "dict[str, object]") -> str:
        """The version prefix of a metadata URL when the root asks for consistent snapshots."""
        if self._trusted.root.signed.get("consistent_snapshot"):
            return str(info["version"]) + "."
        return ""

    def _targets(self, role: str, delegator: str) -> "dict[str, object]":
        """Spec 5.6: *role*'s targets as *delegator* delegated it, stored or fetched."""
        trusted = self._trusted
        known = trusted.targets.get(role)
        if known is not None and known[1] == delegator:
            return known[0].signed
        name = role + ".json"
        info = trusted.role_meta(role)
        stored = self._stored(name, info, self._limits.targets)
        try:
            if stored is None:
                raise TufError("bad-metadata", "no stored " + role[:60])
            return trusted.update_targets(stored, role, delegator).signed
        except TufError:
            pass
        finally:
            if stored is not None:
                stored.close()
        url_name = self._versioned(info) + quote(role) + ".json"
        found: list[Metadata] = []

        def update(handle: "BinaryFile") -> None:
            found.append(trusted.update_targets(handle, role, delegator))

        self._fetch(name, url_name, info, self._limits.targets, update)
        return found[0].signed

    def target(self, path: str) -> "TargetInfo | None":
        """Spec 5.6.7: the pre-order depth-first search of the delegations for *path*."""
        if not self._refreshed:
            self.refresh()
        try:
            return self._search(path)
        except MemoryError:
            raise TufError("too-large", "metadata does not fit in this device's memory") from None

    def _search(self, path: str) -> "TargetInfo | None":
        to_visit = [("targets", "root")]
        visited: list[str] = []
        while to_visit and len(visited) <= self._limits.max_delegations:
            role, delegator = to_visit.pop()
            if role in visited:
                continue
            signed = self._targets(role, delegator)
            found = signed["targets"]
            assert isinstance(found, dict)
            info = found.get(path)
            if info is not None:
                return TargetInfo(path, info)
            visited.append(role)
            children = signed.get("delegations")
            if isinstance(children, dict):
                roles = children["roles"]
                assert isinstance(roles, list)
                pending = []
                for child, terminating in delegations.roles_for_target(roles, path):
                    pending.append((child, role))
                    if terminating:
                        to_visit = []
                        break
                pending.reverse()
                to_visit.extend(pending)
        return None

    def cached(self, target: "TargetInfo") -> bool:
        """Whether the targets store already holds *target* with its length and hashes."""
        assert self._targets_store is not None
        handle = self._targets_store.open_verified(target.path)
        if handle is None:
            return False
        try:
            check = FileCheck(target.info, target.path[:60])
            while check.size <= target.length:
                part = handle.read(CHUNK)
                if not part:
                    break
                check.update(part)
            check.finish()
        except TufError:
            return False
        finally:
            handle.close()
        return True

    def target_url(self, target: "TargetInfo") -> str:
        """Where *target* is served: its name under the targets URL, prefixed by one of its
        hashes when the repository's snapshots are consistent (spec 5.7.3)."""
        path = target.path
        if self._trusted.root.signed.get("consistent_snapshot"):
            folder, slash, base = path.rpartition("/")
            path = folder + slash + next(iter(target.hashes.values())) + "." + base
        return self._targets_url + quote(path, "/")

    def download(self, target: "TargetInfo") -> str:
        """Fetch *target* into the targets store, checked as it streams; its stored path."""
        store = self._targets_store
        assert store is not None
        check = FileCheck(target.info, target.path[:60])
        self._download(self.target_url(target), store, target.path, check, target.length)
        store.commit(target.path)
        return store.path(target.path)

    def find(self, path: str) -> TargetInfo:
        """``target(path)``, raising ``unknown-target`` when no trusted role lists it."""
        found = self.target(path)
        if found is None:
            raise TufError("unknown-target", "no trusted targets role lists " + repr(path)[:80])
        return found
