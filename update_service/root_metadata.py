"""Root metadata made on the server, signed offline, and checked before it is installed.

Root is the trust anchor every device is provisioned with, so its keys never
touch the server: the server writes an unsigned root (a first one, or the next
version for a rotation), operators carry the file to the offline machine and
add signatures (``sevenfold keys sign-root``), and the server installs it only
when TUF's rule for a new root holds: the threshold of the *previous* root's
root keys and the threshold of the *new* root's own root keys have both signed
(for version 1 the two are the same). That is the chain a device follows,
``1.root.json`` → ``2.root.json`` → …: each step is signed by keys the device
already trusts.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from securesystemslib.signer import KEY_TYPE_ECDSA, CryptoSigner
from tuf.api.metadata import Key, Metadata, Role, Root, VerificationResult
from tuf.api.serialization import DeserializationError
from tuf.api.serialization.json import JSONSerializer

from device_runtime.core.errors import ConfigError, CryptoError, InvalidField
from device_runtime.ports.cpython.atomic_file import write_atomic
from device_runtime.ports.cpython.bounded_file import read_bounded
from update_service.signing_keys import SCHEME, public_key_from_pem

ROOT_EXPIRY = timedelta(days=365)
MAX_ROOT_FILE = 1 << 20
"""A root with a few dozen keys is a few KiB; a megabyte is no root."""

_PRETTY = JSONSerializer(compact=False)
"""Root files pass through people's hands on the way to the offline machine: keep them legible."""


def first_root(
    *, root_keys: list[Key], threshold: int, online: Mapping[str, Key], now: datetime
) -> Metadata[Root]:
    """Version 1: *threshold* of *root_keys* for root, one online key for each other role."""
    root = Root(
        version=1,
        expires=(now + ROOT_EXPIRY).replace(microsecond=0),
        consistent_snapshot=True,
        roles={name: Role([], 1) for name in ("root", "targets", "snapshot", "timestamp")},
    )
    root.roles["root"].threshold = threshold
    for key in root_keys:
        root.add_key(key, "root")
    for role, key in online.items():
        root.add_key(key, role)
    # Counted by keyid: the same key given twice is one key.
    _check_threshold(threshold, len(root.roles["root"].keyids))
    return Metadata(root)


def next_root(
    current: Root,
    *,
    now: datetime,
    replace: dict[str, list[Key]] | None = None,
    root_threshold: int | None = None,
) -> Metadata[Root]:
    """The version after *current*, unsigned: same keys unless *replace* gives a role new ones.

    With nothing replaced it only renews the expiry, which is how a root is
    kept from expiring.
    """
    new = Root.from_dict(current.to_dict())
    new.version = current.version + 1
    new.expires = (now + ROOT_EXPIRY).replace(microsecond=0)
    for role, keys in (replace or {}).items():
        for keyid in list(new.roles[role].keyids):
            new.revoke_key(keyid, role)
        for key in keys:
            new.add_key(key, role)
    if root_threshold is not None:
        new.roles["root"].threshold = root_threshold
    _check_threshold(new.roles["root"].threshold, len(new.roles["root"].keyids))
    return Metadata(new)


def read_root_file(path: Path) -> Metadata[Root]:
    """A root metadata file as an operator hands it over: size, syntax and type checked."""
    data = read_bounded(path, MAX_ROOT_FILE, what="root metadata file")
    try:
        md = Metadata.from_bytes(data)
    except DeserializationError as exc:
        raise InvalidField(f"{path} is not TUF metadata: {exc}") from exc
    if not isinstance(md.signed, Root):
        raise InvalidField(f"{path} holds {md.signed.type} metadata, not root")
    return md


def write_root_file(path: Path, md: Metadata[Root]) -> None:
    write_atomic(path, md.to_bytes(_PRETTY), mode=0o644)


def sign_root(md: Metadata[Root], signer: CryptoSigner) -> None:
    """Add (or replace) *signer*'s signature over *md*'s signed part."""
    md.signatures.pop(signer.public_key.keyid, None)
    md.sign(signer, append=True)


def check_new_root(md: Metadata[Root], *, previous: Root | None, now: datetime) -> Root:
    """*md* if it may follow *previous* (None: the first root); else why not, in words."""
    new = md.signed
    expected = 1 if previous is None else previous.version + 1
    if new.version != expected:
        have = "no root yet" if previous is None else f"root v{previous.version}"
        raise InvalidField(f"root v{new.version} cannot follow {have}: expected v{expected}")
    if new.is_expired(now):
        raise CryptoError(f"root v{new.version} expired at {new.expires.isoformat()}")
    if not new.consistent_snapshot:
        raise InvalidField(f"root v{new.version} turns consistent snapshots off")
    check_root_keys(new)
    result = new.get_root_verification_result(previous, md.signed_bytes, md.signatures)
    if not result.verified:
        shortfalls = []
        if previous is not None and not result.first.verified:
            shortfalls.append(_shortfall(f"the previous root v{previous.version}", result.first))
        if not result.second.verified:
            shortfalls.append(_shortfall(f"root v{new.version} itself", result.second))
        raise CryptoError(f"root v{new.version} is under-signed: {'; '.join(shortfalls)}")
    return new


def check_root_keys(root: Root) -> None:
    """Every key *root* lists is ECDSA P-256, each under its own keyid.

    P-256 because it is the one signature algorithm devices verify: a key of
    another type would ask them for a verifier they do not have, or (for a
    root key) let a threshold be met with a weaker algorithm than the fleet's.

    Its own keyid (the one TUF computes from the key, as ``SSlibKey.from_crypto``
    does) because TUF counts a threshold by keyid: one key listed under two
    keyids would sign twice and meet a threshold of two alone, on the server
    and in python-tuf's client. Since each public key has exactly one such
    keyid, a key cannot be listed twice either.
    """
    for keyid, key in sorted(root.keys.items()):
        where = f"root v{root.version} key {keyid[:16]}"
        if (key.keytype, key.scheme) != (KEY_TYPE_ECDSA, SCHEME):
            raise CryptoError(
                f"{where} is {key.keytype}/{key.scheme}: every key of the repository must be"
                f" {KEY_TYPE_ECDSA}/{SCHEME} (ECDSA P-256)"
            )
        public = key.keyval.get("public")
        if not isinstance(public, str):
            raise InvalidField(f"{where} has no PEM public key")
        own = public_key_from_pem(public.encode(), where).keyid
        if own != keyid:
            raise InvalidField(
                f"{where} is listed under a keyid that is not its own ({own[:16]}): one key"
                " under two keyids would count twice toward a threshold"
            )


def describe_root(root: Root) -> dict[str, Any]:
    """What a signature over *root* vouches for, as the operator signing it should read it."""
    return {
        "version": root.version,
        "expires": root.expires.isoformat(),
        "consistent_snapshot": root.consistent_snapshot,
        "roles": {
            name: {"threshold": role.threshold, "keyids": sorted(role.keyids)}
            for name, role in root.roles.items()
        },
    }


def root_changes(previous: Root, new: Root) -> list[str]:
    """How *new* differs from *previous*, one sentence per difference, in role order."""
    changes = []
    if new.version != previous.version + 1:
        changes.append(f"v{new.version} is not the version after v{previous.version}")
    if new.expires != previous.expires:
        changes.append(f"expiry {previous.expires.isoformat()} -> {new.expires.isoformat()}")
    if new.consistent_snapshot != previous.consistent_snapshot:
        changes.append(f"consistent snapshots turned {'on' if new.consistent_snapshot else 'off'}")
    for name, role in new.roles.items():
        before = previous.roles.get(name)
        old_keyids = set(before.keyids) if before is not None else set()
        changes += [f"{name}: adds key {k}" for k in sorted(set(role.keyids) - old_keyids)]
        changes += [f"{name}: removes key {k}" for k in sorted(old_keyids - set(role.keyids))]
        if before is not None and before.threshold != role.threshold:
            changes.append(f"{name}: threshold {before.threshold} -> {role.threshold}")
    return changes


def _shortfall(whose: str, result: VerificationResult) -> str:
    return (
        f"{len(result.signed)} of the {result.threshold} signatures {whose} requires"
        f" (unsigned keys: {', '.join(k[:12] for k in sorted(result.unsigned)) or 'none'})"
    )


def _check_threshold(threshold: int, keys: int) -> None:
    if keys < 1:
        raise ConfigError("root needs at least one root key")
    if not 1 <= threshold <= keys:
        raise ConfigError(f"a root threshold of {threshold} cannot be met by {keys} root keys")
