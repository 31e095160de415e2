"""The hardware models the service publishes for: their image keys and latest releases.

A model must be registered before anything is published for it, with the
public key(s) its images are signed with (the MCUboot keys its bootloader
trusts), so a publish checks the image as the device will and refuses an
image signed for another model. The record also keeps the model's latest
releases: the images deltas are built from, and a security counter a new
release may not go below. It is private to the server (``update-service/``),
never served, and written before the timestamp that makes a release live, so
that a publisher killed in between leaves a record that is at worst ahead of
the repository. It is not the only floor: a record lost or restored from an
old backup would be behind, so the signed repository's current release counts
as well (:func:`update_service.release_publisher.current_releases`).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from device_runtime.core.errors import ConfigError, InvalidField, StorageError
from device_runtime.ports.cpython.atomic_file import write_atomic

MODEL_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$")
"""Lower case, digits and inner dashes: it becomes a role name, a directory and a file name.

No ``_``: that is the character that sets a model's hashed bins apart
(``model-<name>_bin-<hex>``, :func:`update_service.hashed_bins.bin_prefix`)."""

RECENT_RELEASES = 8
"""Releases remembered per model: the newest is the current one, the rest delta bases."""


class UnknownHardware(ConfigError):
    """Nothing can be published for a hardware model that was never registered."""

    code = "unknown-hardware"


def check_model_name(model: str) -> str:
    if not MODEL_NAME.match(model):
        raise InvalidField(
            f"{model!r} is not a hardware model name (1-32 of a-z, 0-9 and inner '-')"
        )
    return model


@dataclass(frozen=True, slots=True, kw_only=True)
class ReleaseRecord:
    version: str
    security_counter: int
    image_digest: str
    """The image hash (MCUboot SHA256 TLV) as hex: what the device measures and attests."""
    target: str
    """The image's target path in the repository."""
    sha256: str
    """Hash of the whole image file: where it is stored under ``targets/``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class HardwareModel:
    name: str
    image_keys: tuple[str, ...]
    """PEM public keys an image for this model may be signed with."""
    releases: tuple[ReleaseRecord, ...] = field(default=())
    """Oldest first; the last is the current release."""

    @property
    def current(self) -> ReleaseRecord | None:
        return self.releases[-1] if self.releases else None

    def with_release(self, release: ReleaseRecord) -> HardwareModel:
        kept = [r for r in self.releases if r.image_digest != release.image_digest]
        releases = (*kept, release)[-RECENT_RELEASES:]
        return HardwareModel(name=self.name, image_keys=self.image_keys, releases=releases)


class HardwareModels:
    """One JSON file per model in a private directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def get(self, model: str) -> HardwareModel:
        path = self._path(model)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UnknownHardware(
                f"hardware model {model!r} is not registered; add it with"
                f" `sevenfold release add-hardware {model} --image-key PUB.pem`"
            ) from None
        except (OSError, ValueError) as exc:
            raise StorageError(f"hardware model record {path} cannot be read: {exc}") from exc
        try:
            return HardwareModel(
                name=str(raw["name"]),
                image_keys=tuple(str(k) for k in raw["image_keys"]),
                releases=tuple(ReleaseRecord(**r) for r in raw["releases"]),
            )
        except (KeyError, TypeError) as exc:
            raise StorageError(f"hardware model record {path} is damaged: {exc}") from exc

    def exists(self, model: str) -> bool:
        return self._path(model).is_file()

    def names(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        return sorted(p.stem for p in self.directory.glob("*.json") if MODEL_NAME.match(p.stem))

    def put(self, model: HardwareModel) -> None:
        data = json.dumps(asdict(model), indent=2, sort_keys=True).encode()
        write_atomic(self._path(model.name), data, mode=0o600)

    def _path(self, model: str) -> Path:
        return self.directory / f"{check_model_name(model)}.json"
