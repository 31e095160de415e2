"""The verifier's handlers as every gateway serves them, in the server process or a child."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from cryptography import x509

from attestation_server.attestation_service import AttestationService
from attestation_server.trust_store import TrustStore
from fleet_platform.manufacturer_cas import DIRECTORY as MANUFACTURER_DIRECTORY
from fleet_platform.manufacturer_cas import trusted_manufacturer_cas
from fleet_platform.pki import attestation_authority


class TrustedManufacturers:
    """The manufacturer CAs trusted in *state_dir*, read again only when the directory's files
    changed (each CA is a file named by its certificate's SHA-256, written by rename): an
    appraisal must not read and parse PEM files from disk every time."""

    def __init__(self, state_dir: Path) -> None:
        self._state_dir = state_dir
        self._seen: tuple[str, ...] | None = None
        self._cas: list[x509.Certificate] = []
        self._lock = threading.Lock()

    def __call__(self) -> list[x509.Certificate]:
        directory = self._state_dir / MANUFACTURER_DIRECTORY
        try:
            seen: tuple[str, ...] | None = tuple(sorted(os.listdir(directory)))
        except OSError:
            seen = None
        with self._lock:
            if seen is None or seen != self._seen:
                self._cas = trusted_manufacturer_cas(self._state_dir)
                self._seen = seen
            return list(self._cas)


def attestation_service(
    store: TrustStore, state_dir: Path, *, nonce_ttl_s: int
) -> AttestationService:
    """Passes are signed by the attestation CA in *state_dir*; DeviceID certificates must chain to
    a manufacturer CA trusted there (read again whenever trust was added)."""
    return AttestationService(
        store=store,
        authority=attestation_authority(state_dir),
        manufacturer_cas=TrustedManufacturers(state_dir),
        nonce_ttl_s=nonce_ttl_s,
    )
