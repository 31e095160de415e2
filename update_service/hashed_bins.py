"""How one hardware model's targets are spread over its role and its hashed bins.

A device downloads the metadata on the path to its own target only: the
top-level targets role, its model's role ``model-<name>`` and, once the model
has many targets, the one bin (a TUF succinct hash-bin delegation, TAP 15)
whose hash prefix its target path falls in. So no leaf role grows past
:data:`LEAF_CAPACITY` targets: a model starts with its targets in its own role
and, the first time a leaf would overflow, every target of the model is
redistributed over twice as many bins or more (the bins keep their names
``model-<name>_bin-<hex>``, so a re-bin adds names to the snapshot rather than a
new generation of them). The ``_`` is what keeps bins and models apart: a model
name may not contain one (:data:`~update_service.hardware_models.MODEL_NAME`),
so no model's role ``model-<name>`` is ever another model's bin. A publish
then rewrites one bin whatever the size of the repository; a re-bin rewrites
them all, rarely (each one at least doubles the count), so its cost is spread
over the publishes that filled the bins.

The bound is a trade between the two files a device of a large model
downloads that grow with it: a leaf of up to ``LEAF_CAPACITY`` targets (about
300 bytes each), and the snapshot, which names every bin of every model (about
45 bytes each). See docs/releases.md for the figures.
"""

from __future__ import annotations

from tuf.api.metadata import Key, SuccinctRoles, TargetFile

from update_service.tuf_repository import BIN_MARK, TufRepository

LEAF_CAPACITY = 32
"""Targets one role may hold before its model is re-binned: a full leaf is about 10 KB,
which MicroPython's ``json.load`` parses in a 64 KiB heap with a third of it left
(tests/update_service/test_device_budget.py); 48 targets no longer fit."""

MAX_BIT_LENGTH = 16
"""65,536 bins: far beyond what a device's snapshot can list, so never reached in practice."""


def model_role(model: str) -> str:
    return f"model-{model}"


def bin_prefix(model: str) -> str:
    """Bins are ``<prefix>-<hex>``; see the module docstring for why the ``_``."""
    return f"model-{model}{BIN_MARK[:-1]}"


def bit_length_for(count: int, *, at_least: int) -> int:
    """Bits of hash prefix that leave *count* targets' bins half full on average."""
    bits = max(1, at_least)
    while count > (1 << bits) * LEAF_CAPACITY // 2 and bits < MAX_BIT_LENGTH:
        bits += 1
    return bits


def model_targets(repo: TufRepository, model: str) -> dict[str, TargetFile]:
    """Every target of *model* in the live repository, by path (reads every leaf)."""
    found: dict[str, TargetFile] = {}
    for leaf in repo.leaves(model_role(model)):
        found.update(repo.targets(leaf).targets)
    return found


def find_target(repo: TufRepository, model: str, path: str) -> TargetFile | None:
    """Target *path* of *model*, looked up where a client would look: one leaf."""
    role = model_role(model)
    own = repo.targets(role).targets.get(path)
    if own is not None:
        return own
    return repo.targets(repo.leaf_for(role, path)).targets.get(path)


def add_targets(
    repo: TufRepository,
    model: str,
    targets: list[TargetFile],
    *,
    pointer: TargetFile,
    keys: list[Key],
) -> list[str]:
    """Add *targets* under *model*'s delegation and set its *pointer*; the roles re-signed.

    The pointer (the model's current release, see
    :mod:`update_service.release_publisher`) always sits in the model role
    itself, so a device learns what to fetch from the one small role it
    downloads anyway. *keys* are the release keys that sign the bins. Each
    role changes at most once per call, so a publish writes one new version of
    the model role and of the bin it adds to, whatever the layout.
    """
    role = model_role(model)
    by_leaf: dict[str, list[TargetFile]] = {role: []}
    for target in targets:
        by_leaf.setdefault(repo.leaf_for(role, target.path), []).append(target)
    overflowing = any(
        len(repo.targets(leaf).targets.keys() | {t.path for t in added}) > LEAF_CAPACITY
        for leaf, added in by_leaf.items()
    )
    if overflowing:
        return _rebin(repo, model, targets, pointer, keys)
    for leaf, added in sorted(by_leaf.items()):
        with repo.edit_targets(leaf) as signed:
            for target in added:
                signed.targets[target.path] = target
            if leaf == role:
                signed.targets[pointer.path] = pointer
    return sorted(by_leaf)


def _rebin(
    repo: TufRepository,
    model: str,
    added: list[TargetFile],
    pointer: TargetFile,
    keys: list[Key],
) -> list[str]:
    role = model_role(model)
    current = repo.bins(role)
    everything = model_targets(repo, model)
    everything.update({target.path: target for target in added})
    everything.pop(pointer.path, None)
    bits = bit_length_for(len(everything), at_least=current.bit_length + 1 if current else 1)
    succinct = SuccinctRoles(
        keyids=[key.keyid for key in keys],
        threshold=1,
        bit_length=bits,
        name_prefix=bin_prefix(model),
    )
    repo.delegate_bins(role, succinct, {key.keyid: key for key in keys})
    contents: dict[str, dict[str, TargetFile]] = {name: {} for name in succinct.get_roles()}
    for path, target in everything.items():
        contents[succinct.get_role_for_target(path)][path] = target
    for name, held in contents.items():
        with repo.edit_targets(name) as signed:
            signed.targets = held
    with repo.edit_targets(role) as signed:
        signed.targets = {pointer.path: pointer}
    return [*contents, role]
