"""The server's online signing keys: one directory per role, one 0600 PEM file per key.

Timestamp, snapshot, targets and the per-model release roles are signed
without a person present (a publish, the periodic re-signing), so their keys
live on the server, in ``<state>/update-service/online-keys/<role>/<keyid>.pem``,
outside the repository directory that is served. Which of them is in use is
not recorded here: a key signs a role only while the role's delegator (root,
or targets for the release roles) lists its keyid, so a key made for a
rotation waits unused until the new root that names it is imported.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from securesystemslib.signer import CryptoSigner, SSlibKey

from device_runtime.core.errors import ConfigError
from update_service.signing_keys import generate_signer, read_signer, write_private_key

ONLINE_ROLES = ("targets", "snapshot", "timestamp", "releases")
"""``releases`` signs every ``model-<name>`` role and its hashed bins."""

_KEYID = re.compile(r"^[0-9a-f]{64}$")


class OnlineKeyStore:
    """Private keys of the online roles, kept owner-only under the state directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def generate(self, role: str) -> SSlibKey:
        """A new key for *role*, stored before its public half is handed out."""
        signer = generate_signer()
        write_private_key(self._role_dir(role) / f"{signer.public_key.keyid}.pem", signer)
        return signer.public_key

    def signers(self, role: str, keyids: list[str]) -> list[CryptoSigner]:
        """The keys held for *role* among *keyids* (the delegator's list), in that order."""
        found = []
        for keyid in keyids:
            path = self._role_dir(role) / f"{keyid}.pem"
            if _KEYID.match(keyid) and path.is_file():
                found.append(read_signer(path))
        return found

    def keyids(self, role: str) -> set[str]:
        directory = self._role_dir(role)
        if not directory.is_dir():
            return set()
        return {p.stem for p in directory.glob("*.pem") if _KEYID.match(p.stem)}

    def discard(self, role: str, *, keep: set[str]) -> list[str]:
        """Delete *role*'s keys not in *keep* (retired or never used); the keyids deleted."""
        removed = sorted(self.keyids(role) - keep)
        for keyid in removed:
            (self._role_dir(role) / f"{keyid}.pem").unlink(missing_ok=True)
        return removed

    def _role_dir(self, role: str) -> Path:
        if role not in ONLINE_ROLES:
            raise ConfigError(f"{role!r} is not an online role (one of {', '.join(ONLINE_ROLES)})")
        directory = self.directory / role
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(directory, 0o700)
        return directory
