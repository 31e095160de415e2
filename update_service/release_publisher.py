"""Publishing a release: a verified image becomes a target of its hardware model.

What a publish checks, in order: the model is registered; the image is a
well-formed MCUboot image signed by one of the model's image keys (the same
verifier the device runs); its security counter is not below the current
release's (as the live signed pointer has it, and the private record: see
:func:`current_releases`), and at an equal counter its version is not lower
(unless a downgrade is asked for); its version is not already published with
other bytes. Then it
writes, each file atomically and in this order: the image (and its deltas)
under ``targets/``, the new versions of the model role and the bin the image
falls in, the snapshot, the model's private record, and last the timestamp.
Until the timestamp is replaced, every reader sees the previous release; after,
the new one.

Each model role lists, besides its bins, one target of its own: the pointer
``<model>/current.json``, whose custom fields (and content) say the current
release's version, security counter, image digest, image target and the
deltas to it. A device reads it from the small model role it downloads anyway
and then fetches exactly one bin: it never lists the model's targets.

Publishing the same image again changes nothing and reports it as already
published, so a publish whose later steps (the endorsement) failed can simply
be run again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from tuf.api.metadata import DelegatedRole, Delegations, Key, TargetFile

from device_runtime.core import signed_image
from device_runtime.core.delta_patch import DeltaError
from device_runtime.core.errors import ConfigError, InvalidField, Replayed
from device_runtime.core.signed_image import ImageError
from device_runtime.image_signer import parse_version, public_point
from device_runtime.ports.cpython.crypto import verify_ecdsa_der
from update_service import deltas
from update_service.hardware_models import (
    RECENT_RELEASES,
    HardwareModel,
    HardwareModels,
    ReleaseRecord,
    UnknownHardware,
    check_model_name,
)
from update_service.hashed_bins import add_targets, find_target, model_role, model_targets
from update_service.release_store import ReleaseStore
from update_service.tuf_repository import RELEASES, RepositoryMissing, TufRepository

POINTER = "current.json"
IMAGE_KIND = "image"
DELTA_KIND = "delta"
POINTER_KIND = "current"
DELTA_BASES = 3
"""Deltas are built from this many of the model's latest releases (the versions most
devices still run); older devices download the full image."""


class AlreadyPublished(InvalidField):
    """This version of the model is in the repository with other bytes."""

    code = "version-taken"


@dataclass(frozen=True, slots=True, kw_only=True)
class PublishedRelease:
    model: str
    version: str
    security_counter: int
    image_digest: str
    target: str
    length: int
    sha256: str
    already_published: bool
    deltas: list[dict[str, Any]] = field(default_factory=list)
    roles: list[str] = field(default_factory=list)
    """Roles that got a new version (snapshot and timestamp included)."""
    snapshot_version: int = 0
    timestamp_version: int = 0
    warnings: list[str] = field(default_factory=list)
    """What was left out without failing the publish: the deltas that could not be built."""

    def as_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "security_counter": self.security_counter,
            "image_digest": self.image_digest,
            "target": self.target,
            "length": self.length,
            "sha256": self.sha256,
            "already_published": self.already_published,
            "deltas": self.deltas,
            "roles": self.roles,
            "snapshot_version": self.snapshot_version,
            "timestamp_version": self.timestamp_version,
            "warnings": self.warnings,
        }


def image_target(model: str, version: str) -> str:
    return f"{model}/{model}-{version.replace('+', '_')}.img"


def pointer_target(model: str) -> str:
    return f"{model}/{POINTER}"


def image_key_pem(pem: bytes, source: str = "the image key") -> str:
    """*pem* if it is a P-256 public key an image can be checked with.

    A private key is refused: whoever holds an image signing key can sign
    firmware the devices boot, so it belongs on the build or signing machine,
    never on the server (which only checks images).
    """
    if b"PRIVATE KEY" in pem:
        raise ConfigError(
            f"{source} holds a private key: an image signing key must never be on the server;"
            " give its public half (`openssl ec -in KEY.pem -pubout`)"
        )
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{source} is not a PEM public key: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ConfigError(f"{source}: an image key must be ECDSA P-256 (MCUboot's ECDSA_SIG)")
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def verify_image(image: bytes, model: HardwareModel) -> signed_image.VerifiedImage:
    """*image* checked as the device checks it, against each of *model*'s image keys."""
    reasons = []
    for pem in model.image_keys:
        key = serialization.load_pem_public_key(pem.encode("ascii"))
        assert isinstance(key, ec.EllipticCurvePublicKey)
        offset = 0

        def read(n: int) -> bytes:
            nonlocal offset
            chunk = image[offset : offset + n]
            offset += len(chunk)
            return chunk

        try:
            return signed_image.verify(read, public_point(key), verify_ecdsa_der)
        except ImageError as exc:
            reasons.append(exc.reason)
    if len(reasons) == 1:
        raise ImageError(f"refused for {model.name}: {reasons[0]}")
    raise ImageError(f"no image key of {model.name} accepts the image: {'; '.join(reasons)}")


def release_keys(store: ReleaseStore) -> list[Key]:
    keys = store.keys
    return [s.public_key for s in keys.signers(RELEASES, sorted(keys.keyids(RELEASES)))]


def add_hardware(store: ReleaseStore, model: str, image_keys: list[str]) -> list[str]:
    """Register *model* with its image keys and delegate ``model-<name>`` to the release key.

    Refused when ``model-<name>`` names a role the repository has already (its
    delegation, or any role the snapshot lists, a bin included): a second
    delegation of one name would let one model's publishes rewrite the other's
    releases.
    """
    check_model_name(model)
    if not image_keys:
        raise ConfigError("a hardware model needs at least one image key")
    models = HardwareModels(store.hardware_dir)
    role = model_role(model)
    with store.writer() as repo:
        _require(repo)
        if models.exists(model):
            raise ConfigError(f"hardware model {model!r} is registered already")
        if role in repo.model_roles():
            raise ConfigError(
                f"hardware model {model!r} has its role {role} in the repository already, but"
                f" its private record ({models.directory.name}/{model}.json) is missing: restore"
                " it from a backup, or give the model its image keys again with"
                f" `sevenfold release set-image-keys {model} --image-key PUB.pem`"
            )
        if f"{role}.json" in repo.snapshot().meta:
            raise ConfigError(
                f"{role} is a role of this repository already: {model!r} cannot be registered"
            )
        keys = release_keys(store)
        with repo.edit_targets() as targets:
            delegations = targets.delegations or Delegations(keys={}, roles={})
            for key in keys:
                delegations.keys[key.keyid] = key
            assert delegations.roles is not None
            delegations.roles[role] = DelegatedRole(
                name=role,
                keyids=[key.keyid for key in keys],
                threshold=1,
                terminating=True,
                paths=[f"{model}/*"],
            )
            targets.delegations = delegations
        with repo.edit_targets(role):
            pass
        repo.do_snapshot()
        repo.do_timestamp()
        models.put(HardwareModel(name=model, image_keys=tuple(image_keys)))
        return [path.name for path in repo.written]


def set_image_keys(store: ReleaseStore, model: str, image_keys: list[str]) -> HardwareModel:
    """Replace the image keys of *model*, a model the repository has; its new record.

    The explicit way to change which keys sign a model's images, and the way
    back for a model whose private record was lost: the record is then rebuilt
    from the signed repository (its latest releases, the current one last), so
    deltas are built from them again. Nothing in the repository changes.
    """
    check_model_name(model)
    if not image_keys:
        raise ConfigError("a hardware model needs at least one image key")
    models = HardwareModels(store.hardware_dir)
    with store.writer() as repo:
        _require(repo)
        if model_role(model) not in repo.model_roles():
            raise UnknownHardware(
                f"hardware model {model!r} has no role in the repository; register it with"
                f" `sevenfold release add-hardware {model} --image-key PUB.pem`"
            )
        releases = (
            models.get(model).releases if models.exists(model) else _live_releases(repo, model)
        )
        record = HardwareModel(name=model, image_keys=tuple(image_keys), releases=releases)
        models.put(record)
        return record


def _live_releases(repo: TufRepository, model: str) -> tuple[ReleaseRecord, ...]:
    """*model*'s latest image releases as the repository has them, the current one last."""
    targets = model_targets(repo, model)
    pointer = targets.get(pointer_target(model))
    current = pointer.custom.get("image") if pointer is not None and pointer.custom else None
    images = sorted(
        (
            (path, target)
            for path, target in targets.items()
            if isinstance(target.custom, dict) and target.custom.get("kind") == IMAGE_KIND
        ),
        key=lambda item: (
            item[0] == current,
            item[1].custom["security_counter"],
            parse_version(item[1].custom["version"]),
        ),
    )
    return tuple(
        ReleaseRecord(
            version=target.custom["version"],
            security_counter=target.custom["security_counter"],
            image_digest=target.custom["image_digest"],
            target=path,
            sha256=target.hashes["sha256"],
        )
        for path, target in images[-RECENT_RELEASES:]
    )


def current_releases(repo: TufRepository, record: HardwareModel) -> list[tuple[str, int]]:
    """``(version, security counter)`` of *record*'s current release, by each account of it.

    The live pointer, signed in the repository, is what devices follow, so it
    sets the floor whatever happened to the private record (lost, restored
    from an old backup, or rebuilt). The record can be ahead of it: a publish
    killed after the record and before its timestamp; that one counts too,
    which refuses too much rather than too little.
    """
    found = []
    pointer = repo.targets(model_role(record.name)).targets.get(pointer_target(record.name))
    if pointer is not None and isinstance(pointer.custom, dict):
        found.append((str(pointer.custom["version"]), int(pointer.custom["security_counter"])))
    if record.current is not None:
        found.append((record.current.version, record.current.security_counter))
    return found


def publish(
    store: ReleaseStore, image: bytes, *, model: str, allow_downgrade: bool = False
) -> PublishedRelease:
    """Publish *image* for *model* (see the module docstring for the checks and the order).

    An image older than the current release at the same security counter is
    refused unless *allow_downgrade*: devices would accept it, so publishing
    it moves the whole model back, which is only meant when reverting a bad
    release.
    """
    models = HardwareModels(store.hardware_dir)
    verified = verify_image(image, models.get(model))
    digest = verified.image_hash.hex()
    path = image_target(model, verified.version)
    sha256 = hashlib.sha256(image).hexdigest()
    custom = {
        "hwmodel": model,
        "kind": IMAGE_KIND,
        "version": verified.version,
        "security_counter": verified.security_counter,
        "image_digest": digest,
    }
    release = PublishedRelease(
        model=model,
        version=verified.version,
        security_counter=verified.security_counter,
        image_digest=digest,
        target=path,
        length=len(image),
        sha256=sha256,
        already_published=True,
    )
    with store.writer() as repo:
        _require(repo)
        record = models.get(model)
        live = find_target(repo, model, path)
        if live is not None:
            if live.hashes.get("sha256") != sha256:
                raise AlreadyPublished(
                    f"{model} {verified.version} is published already with another image"
                    f" (sha256 {live.hashes.get('sha256')}); give the new one another version"
                )
            return release
        for version, counter in current_releases(repo, record):
            if verified.security_counter < counter:
                raise Replayed(
                    f"security counter {verified.security_counter} is below the current"
                    f" release's {counter} ({model} {version}): devices would refuse it as a"
                    " rollback"
                )
            older = parse_version(verified.version) < parse_version(version)
            if verified.security_counter == counter and older and not allow_downgrade:
                raise Replayed(
                    f"{model} {verified.version} is older than the current release {version}"
                    f" at the same security counter {counter}: devices would go back to it;"
                    " give --allow-downgrade if that is meant (reverting a bad release)"
                )
        target = repo.store_target(path, image)
        target.unrecognized_fields["custom"] = custom
        deltas, warnings = _deltas(repo, record, image, custom)
        pointer_fields = {
            **custom,
            "kind": POINTER_KIND,
            "image": path,
            "deltas": {d.custom["base_digest"]: d.path for d in deltas},
        }
        pointer_data = json.dumps(pointer_fields, sort_keys=True, separators=(",", ":")).encode()
        pointer = repo.store_target(pointer_target(model), pointer_data)
        pointer.unrecognized_fields["custom"] = pointer_fields
        roles = add_targets(
            repo, model, [target, *deltas], pointer=pointer, keys=release_keys(store)
        )
        repo.do_snapshot()
        models.put(
            record.with_release(
                ReleaseRecord(
                    version=verified.version,
                    security_counter=verified.security_counter,
                    image_digest=digest,
                    target=path,
                    sha256=sha256,
                )
            )
        )
        repo.do_timestamp()
        return replace(
            release,
            already_published=False,
            deltas=[
                {"target": d.path, "length": d.length, "base_version": d.custom["base_version"]}
                for d in deltas
            ],
            roles=[*roles, "snapshot", "timestamp"],
            snapshot_version=repo.snapshot().version,
            timestamp_version=repo.timestamp().version,
            warnings=warnings,
        )


def delta_target(model: str, base: str, version: str) -> str:
    return f"{model}/{model}-{base.replace('+', '_')}-to-{version.replace('+', '_')}.delta"


def _deltas(
    repo: TufRepository, record: HardwareModel, image: bytes, custom: dict[str, Any]
) -> tuple[list[TargetFile], list[str]]:
    """Delta targets from the latest live releases to *image*, where :mod:`deltas` says so.

    A delta is an optimisation: when one cannot be made (its base image is
    missing or damaged on disk, or the device's applier would not rebuild the
    image from the patch) it is left out with a warning, and devices on that
    base download the full image.
    """
    made, warnings = [], []
    bases = [r for r in record.releases if r.image_digest != custom["image_digest"]]
    for base in bases[-DELTA_BASES:]:
        live = find_target(repo, record.name, base.target)
        if live is None or live.hashes.get("sha256") != base.sha256:
            continue  # recorded by a publisher that died before its timestamp: never live
        directory, _, name = base.target.rpartition("/")
        stored = repo.targets_dir / directory / f"{base.sha256}.{name}"
        skipped = f"no delta from {base.version}"
        try:
            old = stored.read_bytes()
        except OSError as exc:
            warnings.append(f"{skipped}: its image {stored} cannot be read ({exc.strerror})")
            continue
        if hashlib.sha256(old).hexdigest() != base.sha256:
            warnings.append(f"{skipped}: its image {stored} is damaged (another sha256)")
            continue
        try:
            delta = deltas.build_delta(old, image)
        except DeltaError as exc:
            warnings.append(f"{skipped}: {exc.reason}")
            continue
        if not deltas.worth_publishing(delta, len(image)):
            continue
        target = repo.store_target(
            delta_target(record.name, base.version, custom["version"]), delta
        )
        target.unrecognized_fields["custom"] = {
            **custom,
            "kind": DELTA_KIND,
            "base_version": base.version,
            "base_digest": base.image_digest,
        }
        made.append(target)
    return made, warnings


def list_releases(repo: TufRepository, model: str | None = None) -> list[dict[str, Any]]:
    """Every image target (newest security counter last), with whether it is current."""
    _require(repo)
    models = [model] if model is not None else [r[len("model-") :] for r in repo.model_roles()]
    releases = []
    for name in models:
        check_model_name(name)
        if model_role(name) not in repo.model_roles():
            raise ConfigError(f"hardware model {name!r} has no role in the repository")
        targets = model_targets(repo, name)
        pointer = targets.get(pointer_target(name))
        current = pointer.custom.get("image") if pointer is not None and pointer.custom else None
        for path, target in targets.items():
            custom = target.custom
            if isinstance(custom, dict) and custom.get("kind") == IMAGE_KIND:
                releases.append(_release_view(path, target, current))
    return sorted(releases, key=lambda r: (r["model"], r["security_counter"], r["version"]))


def show_release(repo: TufRepository, model: str, version: str) -> dict[str, Any]:
    """One image release of *model* and the deltas published to it."""
    _require(repo)
    path = image_target(check_model_name(model), version)
    if model_role(model) not in repo.model_roles():
        raise ConfigError(f"hardware model {model!r} has no role in the repository")
    targets = model_targets(repo, model)
    target = targets.get(path)
    if target is None:
        raise ConfigError(f"{model} {version} is not published")
    pointer = targets.get(pointer_target(model))
    current = pointer.custom.get("image") if pointer is not None and pointer.custom else None
    shown = _release_view(path, target, current)
    shown["deltas"] = sorted(
        (
            {"target": p, "length": t.length, "base_version": t.custom["base_version"]}
            for p, t in targets.items()
            if isinstance(t.custom, dict)
            and t.custom.get("kind") == DELTA_KIND
            and t.custom.get("image_digest") == shown["image_digest"]
        ),
        key=lambda d: d["target"],
    )
    return shown


def device_download(repo: TufRepository, model: str) -> dict[str, Path]:
    """The metadata files a device of *model* downloads to reach its current image.

    Newest root (a device that is behind also fetches each version between),
    timestamp, snapshot, targets, the model role, and the one bin the current
    image's path hashes to, if the model has bins.
    """
    _require(repo)
    role = model_role(check_model_name(model))
    metadata = repo.metadata_dir
    files = {
        "root": metadata / f"{repo.root_version()}.root.json",
        "timestamp": metadata / "timestamp.json",
        "snapshot": metadata / f"{repo.snapshot().version}.snapshot.json",
        "targets": metadata / f"{repo.targets().version}.targets.json",
        "model": metadata / f"{repo.targets(role).version}.{role}.json",
    }
    pointer = repo.targets(role).targets.get(pointer_target(model))
    if pointer is not None:
        leaf = repo.leaf_for(role, pointer.custom["image"])
        if leaf != role:
            files["bin"] = metadata / f"{repo.targets(leaf).version}.{leaf}.json"
    return files


def _release_view(path: str, target: TargetFile, current: str | None) -> dict[str, Any]:
    custom = target.custom
    return {
        "model": custom["hwmodel"],
        "version": custom["version"],
        "security_counter": custom["security_counter"],
        "image_digest": custom["image_digest"],
        "target": path,
        "length": target.length,
        "sha256": target.hashes.get("sha256"),
        "current": path == current,
    }


def _require(repo: TufRepository) -> None:
    if not repo.exists():
        raise RepositoryMissing(
            "no TUF repository here yet: run `sevenfold keys init`, sign the root offline,"
            " then `sevenfold keys import-root`"
        )
