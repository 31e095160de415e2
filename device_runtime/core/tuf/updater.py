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

import hashlib

from device_runtime.core import sha512
from device_runtime.core.errors import SevenfoldError, TooLarge
from device_runtime.core.tuf import delegations
from device_runtime.core.tuf.error import TufError
from device_runtime.core.tuf.names import file_name, quote
from device_runtime.core.tuf.trusted_set import TrustedSet

TYPE_CHECKING = False
if TYPE_CHECKING:
    from device_runtime.core.port_types import Clock, Fetcher, Store, TargetStore, TufCrypto

CHUNK = 2048


class Limits:
    """The most any document may be, in bytes, and how far the workflow may go."""

    def __init__(
        self,
        *,
        root: int = 64 * 1024,
        timestamp: int = 16 * 1024,
        snapshot: int = 256 * 1024,
        targets: int = 1024 * 1024,
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
        self._trusted = TrustedSet(root, clock.unix_time(), crypto)

    def _fetch(self, name: str, max_length: int, missing_ok: bool = False) -> "bytes | None":
        url = self._metadata_url + name
        try:
            response = self._fetcher(url, max_length=max_length, timeout_s=self._limits.timeout_s)
            try:
                if missing_ok and response.status in (403, 404):
                    return None
                if response.status != 200:
                    raise TufError("http-status", name + " answered HTTP " + str(response.status))
                parts: list[bytes] = []
                while True:
                    part = response.read(CHUNK)
                    if not part:
                        return b"".join(parts)
                    parts.append(part)
            finally:
                response.close()
        except TooLarge as exc:
            raise TufError("too-large", name + ": " + exc.reason) from None
        except TufError:
            raise
        except SevenfoldError as exc:
            raise TufError("http-status", name + ": " + exc.reason) from None

    def _stored(self, name: str, limit: int) -> "bytes | None":
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
        trusted, limits = self._trusted, self._limits
        first = trusted.root.version + 1
        for version in range(first, first + limits.max_root_rotations):
            data = self._fetch(str(version) + ".root.json", limits.root, missing_ok=True)
            if data is None:
                break
            trusted.update_root(data)
            self._store.write("root.json", data)
        data = self._stored("timestamp.json", limits.timestamp)
        if data is not None:
            try:
                trusted.update_timestamp(data)
            except TufError:
                pass
        data = self._fetch("timestamp.json", limits.timestamp)
        assert data is not None
        if trusted.update_timestamp(data):
            self._store.write("timestamp.json", data)
        data = self._stored("snapshot.json", limits.snapshot)
        try:
            if data is None:
                raise TufError("bad-metadata", "no stored snapshot")
            trusted.update_snapshot(data, stored=True)
        except TufError:
            info = trusted.snapshot_meta()
            prefix = (
                str(info["version"]) + "." if trusted.root.signed.get("consistent_snapshot") else ""
            )
            length = info.get("length")
            data = self._fetch(prefix + "snapshot.json", int(length or limits.snapshot))  # type: ignore[call-overload]
            assert data is not None
            trusted.update_snapshot(data)
            self._store.write("snapshot.json", data)
        self._targets("targets", "root")

    def _targets(self, role: str, delegator: str) -> "dict[str, object]":
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
            info = trusted.role_meta(role)
            prefix = (
                str(info["version"]) + "." if trusted.root.signed.get("consistent_snapshot") else ""
            )
            length = info.get("length")
            url_name = prefix + quote(role) + ".json"
            data = self._fetch(url_name, int(length or self._limits.targets))  # type: ignore[call-overload]
            assert data is not None
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

    def _hashers(self, target: "TargetInfo") -> "list[tuple[str, object]]":
        hashers: list[tuple[str, object]] = []
        for algorithm, expected in target.hashes.items():
            if algorithm == "sha256":
                hashers.append((expected, hashlib.sha256()))
            elif algorithm == "sha512":
                hashers.append((expected, sha512.new()))
            else:
                raise TufError(
                    "mismatch", target.path[:60] + " uses unknown hash " + algorithm[:20]
                )
        return hashers

    def _check(self, target: "TargetInfo", hashers: "list[tuple[str, object]]", size: int) -> None:
        import binascii

        if size != target.length:
            raise TufError(
                "mismatch", target.path[:60] + " is not " + str(target.length) + " bytes"
            )
        for expected, hasher in hashers:
            if binascii.hexlify(hasher.digest()).decode() != expected:  # type: ignore[attr-defined]
                raise TufError("mismatch", target.path[:60] + " does not match its hashes")

    def cached(self, target: "TargetInfo") -> bool:
        """Whether the targets store already holds *target* with its length and hashes."""
        assert self._targets_store is not None
        handle = self._targets_store.open_verified(target.path)
        if handle is None:
            return False
        try:
            hashers = self._hashers(target)
            size = 0
            while size <= target.length:
                part = handle.read(CHUNK)
                if not part:
                    break
                size += len(part)
                for _, hasher in hashers:
                    hasher.update(part)  # type: ignore[attr-defined]
            self._check(target, hashers, size)
        except TufError:
            return False
        finally:
            handle.close()
        return True

    def download(self, target: "TargetInfo") -> str:
        """Fetch *target* into the targets store, checked as it streams; its stored path."""
        store = self._targets_store
        assert store is not None
        path = target.path
        if self._trusted.root.signed.get("consistent_snapshot"):
            folder, slash, base = path.rpartition("/")
            path = folder + slash + next(iter(target.hashes.values())) + "." + base
        hashers = self._hashers(target)
        url = self._targets_url + quote(path, "/")
        try:
            response = self._fetcher(
                url, max_length=target.length, timeout_s=self._limits.timeout_s
            )
        except TooLarge as exc:
            raise TufError("too-large", target.path[:60] + ": " + exc.reason) from None
        except SevenfoldError as exc:
            raise TufError("http-status", target.path[:60] + ": " + exc.reason) from None
        handle = store.open_partial(target.path)
        try:
            if response.status != 200:
                raise TufError(
                    "http-status", target.path[:60] + " answered HTTP " + str(response.status)
                )
            size = 0
            while True:
                part = response.read(CHUNK)
                if not part:
                    break
                size += len(part)
                for _, hasher in hashers:
                    hasher.update(part)  # type: ignore[attr-defined]
                handle.write(part)
            self._check(target, hashers, size)
        except TooLarge as exc:
            handle.close()
            store.discard(target.path)
            raise TufError("too-large", target.path[:60] + ": " + exc.reason) from None
        except BaseException as exc:
            handle.close()
            store.discard(target.path)
            if isinstance(exc, SevenfoldError) and not isinstance(exc, TufError):
                raise TufError("http-status", target.path[:60] + ": " + exc.reason) from None
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
