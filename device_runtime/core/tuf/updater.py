"""The TUF client workflow (spec 5): refresh the top-level metadata, find and fetch targets.

Every port is handed in: *fetcher* (``http_client.http_get``'s signature),
*metadata_store* (``read``/``write`` of whole files by name, atomic),
*targets_store* (``target_directory.TargetDirectory``'s calls), *crypto*
(``sha256`` and ``verify_ecdsa_der``), *clock* (``unix_time``, read once: the
reference time of this whole run). Every document is fetched with a size
limit from *limits* (or the length its parent names) that the fetcher
enforces before buffering; a target is streamed to storage and hashed on the
way. The client's own metadata files are the repository's bytes, written only
after they were trusted, under the role's quoted name.
"""

from device_runtime.core.errors import SevenfoldError, TooLarge
from device_runtime.core.tuf import delegations
from device_runtime.core.tuf.error import TufError
from device_runtime.core.tuf.file_check import FileCheck
from device_runtime.core.tuf.names import file_name, quote
from device_runtime.core.tuf.trusted_set import TrustedSet

TYPE_CHECKING = False
if TYPE_CHECKING:
    from device_runtime.core.port_types import (
        Clock,
        Fetcher,
        HttpBody,
        Store,
        TargetStore,
        TufCrypto,
    )

    Bytes = bytes | bytearray

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
        metadata_store: "Store",
        fetcher: "Fetcher",
        crypto: "TufCrypto",
        clock: "Clock",
        metadata_url: str,
        targets_store: "TargetStore | None",
        targets_url: "str | None",
        limits: "Limits",
    ) -> None:
        self._store = metadata_store
        self._fetcher = fetcher
        self._metadata_url = metadata_url.rstrip("/") + "/"
        self._targets_store = targets_store
        self._targets_url = (targets_url or "").rstrip("/") + "/"
        self._limits = limits
        root = metadata_store.read("root.json")
        if root is None:
            raise TufError("bad-metadata", "no trusted root.json in the metadata store")
        self._refreshed = False
        try:
            self._trusted = TrustedSet(root, clock.unix_time(), crypto)
        except MemoryError:
            raise TufError("too-large", "root does not fit in this device's memory") from None

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

    def _fetch(self, name: str, max_length: int, missing_ok: bool = False) -> "Bytes | None":
        """Metadata file *name*, whole; None if *missing_ok* and the server has none (403/404)."""
        try:
            response = self._open(self._metadata_url + name, max_length, name)
        except TufError as exc:
            if missing_ok and exc.status in (403, 404):
                return None
            raise
        # One buffer of the announced size: a list of parts joined at the end
        # would hold the document twice.
        size = response.length
        parts: list[bytes] = []
        buffer = bytearray(size or 0)
        got = 0
        try:
            while True:
                part = self._read(response, name)
                if not part:
                    return buffer if size is not None else b"".join(parts)
                if size is None:
                    parts.append(part)
                else:
                    buffer[got : got + len(part)] = part
                    got += len(part)
        finally:
            response.close()

    def _stored(self, name: str, limit: int) -> "Bytes | None":
        data = self._store.read(name)
        return data if data is not None and len(data) <= limit else None

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
            data = self._fetch(str(version) + ".root.json", self._limits.root, missing_ok=True)
            if data is None:
                return
            self._trusted.update_root(data)
            self._store.write("root.json", data)
            data = None

    def _load_timestamp(self) -> None:
        """Spec 5.4: the stored timestamp only guards against rollback; the server's is fetched."""
        data = self._stored("timestamp.json", self._limits.timestamp)
        if data is not None:
            try:
                self._trusted.update_timestamp(data)
            except TufError:
                pass
        data = None
        data = self._fetch("timestamp.json", self._limits.timestamp)
        assert data is not None
        if self._trusted.update_timestamp(data):
            self._store.write("timestamp.json", data)

    def _load_snapshot(self) -> None:
        """Spec 5.5: the stored snapshot if it is the one the timestamp names, else the server's."""
        data = self._stored("snapshot.json", self._limits.snapshot)
        try:
            if data is None:
                raise TufError("bad-metadata", "no stored snapshot")
            self._trusted.update_snapshot(data, stored=True)
        except TufError:
            data = None
            data = self._fetch_listed(
                "snapshot", self._trusted.snapshot_meta(), self._limits.snapshot
            )
            self._trusted.update_snapshot(data)
            self._store.write("snapshot.json", data)

    def _fetch_listed(self, role: str, info: "dict[str, object]", limit: int) -> "Bytes":
        """*role*'s metadata at the version (and within the length) its parent lists."""
        prefix = ""
        if self._trusted.root.signed.get("consistent_snapshot"):
            prefix = str(info["version"]) + "."
        length = info.get("length")
        data = self._fetch(prefix + quote(role) + ".json", length or limit)  # type: ignore[arg-type]
        assert data is not None
        return data

    def _targets(self, role: str, delegator: str) -> "dict[str, object]":
        """Spec 5.6: *role*'s targets as *delegator* delegated it, stored or fetched."""
        trusted = self._trusted
        known = trusted.targets.get(role)
        if known is not None and known[1] == delegator:
            return known[0].signed
        name = file_name(role) + ".json"
        data = self._stored(name, self._limits.targets)
        try:
            if data is None:
                raise TufError("bad-metadata", "no stored " + role[:60])
            return trusted.update_targets(data, role, delegator).signed
        except TufError:
            data = None
            data = self._fetch_listed(role, trusted.role_meta(role), self._limits.targets)
            signed = trusted.update_targets(data, role, delegator).signed
            self._store.write(name, data)
            return signed

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
        path = target.path
        check = FileCheck(target.info, target.path[:60])
        response = self._open(self.target_url(target), target.length, path)
        handle = store.open_partial(target.path)
        try:
            while True:
                part = self._read(response, path)
                if not part:
                    break
                check.update(part)
                handle.write(part)
            check.finish()
        except BaseException:
            handle.close()
            store.discard(target.path)
            raise
        finally:
            response.close()
        handle.close()
        store.commit(target.path)
        return store.path(target.path)

    def find(self, path: str) -> TargetInfo:
        """``target(path)``, raising ``unknown-target`` when no trusted role lists it."""
        found = self.target(path)
        if found is None:
            raise TufError("unknown-target", "no trusted targets role lists " + repr(path)[:80])
        return found
