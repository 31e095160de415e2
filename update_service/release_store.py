"""Where the update service keeps its files, and how a writer gets at them.

``<state>/repository`` is the TUF repository, public and served as it is (by
the fleet server, or copied to any static host). ``<state>/update-service`` is
private to the server and never served: the online keys, the hardware models'
image keys and release records, and the publish lock.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from update_service.online_keys import OnlineKeyStore
from update_service.publish_lock import publish_lock
from update_service.tuf_repository import TufRepository


@dataclass(frozen=True, slots=True)
class ReleaseStore:
    state_dir: Path

    @property
    def repository_dir(self) -> Path:
        return self.state_dir / "repository"

    @property
    def private_dir(self) -> Path:
        return self.state_dir / "update-service"

    @property
    def keys(self) -> OnlineKeyStore:
        return OnlineKeyStore(self.private_dir / "online-keys")

    @property
    def hardware_dir(self) -> Path:
        return self.private_dir / "hardware"

    def reader(self) -> TufRepository:
        """The live repository for reading only (a writer may be at work meanwhile)."""
        return TufRepository(self.repository_dir, signers=self.keys.signers)

    @contextmanager
    def writer(self, *, now: datetime | None = None) -> Iterator[TufRepository]:
        """The live repository under the publish lock, read afresh once the lock is held.

        *now* fixes the clock new expiries count from (the keeper's, in tests).
        """
        self.private_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        with publish_lock(self.private_dir / "publish.lock"):
            if now is None:
                yield TufRepository(self.repository_dir, signers=self.keys.signers)
            else:
                yield TufRepository(self.repository_dir, signers=self.keys.signers, now=lambda: now)
