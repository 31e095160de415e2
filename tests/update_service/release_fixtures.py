"""A repository made the way an operator makes one: root keys, offline signatures, models."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from securesystemslib.signer import CryptoSigner

from device_runtime.image_signer import sign_image
from tests.device_runtime.images.cases import KEY
from update_service import key_ceremony, release_publisher, root_metadata
from update_service.release_store import ReleaseStore
from update_service.signing_keys import generate_signer

EMPTY_RUN_KEY = KEY
EMPTY_RUN_PAYLOADS = tuple(
    random.Random(5).randbytes(20_000) + bytes.fromhex(part)
    for part in (
        "c509cfcd85c509cfcd85c509cfcd85c509cfcd85c509cfcd85c509cfcd85c509",
        "09cfcd85c509cfcd85c409cfcd85c509cfcd85c508cfcd85c509cfcd85c5",
    )
)
"""Two payloads whose images, signed with :data:`EMPTY_RUN_KEY` as 1.0.0 and 1.1.0 at
security counter 1 (:data:`EMPTY_RUN_IMAGES`), make a detools patch with two empty
entries in a row, which the device's applier once refused: found by fuzzing
``deltas.build_delta``, shrunk, then put behind 20 KB of shared bytes so that the
delta is worth publishing. The images are deterministic (RFC 6979 signatures)."""
EMPTY_RUN_IMAGES = tuple(
    sign_image(payload, key=EMPTY_RUN_KEY, version=version, security_counter=1)
    for version, payload in zip(("1.0.0", "1.1.0"), EMPTY_RUN_PAYLOADS, strict=True)
)


@dataclass
class Operator:
    """The offline root keys (2 of 3) and one image key per hardware model."""

    store: ReleaseStore
    root_keys: list[CryptoSigner] = field(default_factory=list)
    image_keys: dict[str, ec.EllipticCurvePrivateKey] = field(default_factory=dict)

    def image(self, model: str, version: str, counter: int, body: bytes = b"") -> bytes:
        payload = body or f"{model} firmware {version}".encode() * 64
        return sign_image(
            payload, key=self.image_keys[model], version=version, security_counter=counter
        )

    def add_model(self, model: str, key: ec.EllipticCurvePrivateKey | None = None) -> None:
        key = key or ec.generate_private_key(ec.SECP256R1())
        self.image_keys[model] = key
        pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        release_publisher.add_hardware(self.store, model, [release_publisher.image_key_pem(pem)])

    def publish(
        self, model: str, version: str, counter: int, body: bytes = b""
    ) -> release_publisher.PublishedRelease:
        return release_publisher.publish(
            self.store, self.image(model, version, counter, body), model=model
        )

    def root_bytes(self, version: int = 1) -> bytes:
        return (self.store.repository_dir / "metadata" / f"{version}.root.json").read_bytes()


def create_repository(state_dir: Path, models: tuple[str, ...] = ("board-a",)) -> Operator:
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    operator = Operator(store=ReleaseStore(state_dir))
    operator.root_keys = [generate_signer() for _ in range(3)]
    md = key_ceremony.init_repository(
        operator.store, root_keys=[k.public_key for k in operator.root_keys], threshold=2
    )
    for signer in operator.root_keys[:2]:
        root_metadata.sign_root(md, signer)
    key_ceremony.import_root(operator.store, md)
    for model in models:
        operator.add_model(model)
    return operator
