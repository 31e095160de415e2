"""The verifier's handlers as every gateway serves them, in the server process or a child."""

from __future__ import annotations

from pathlib import Path

from attestation_server.attestation_service import AttestationService
from attestation_server.trust_store import TrustStore
from fleet_platform.manufacturer_cas import trusted_manufacturer_cas
from fleet_platform.pki import attestation_authority


def attestation_service(
    store: TrustStore, state_dir: Path, *, nonce_ttl_s: int
) -> AttestationService:
    """Passes are signed by the attestation CA in *state_dir*; DeviceID certificates must chain to
    a manufacturer CA trusted there (read again for every appraisal: trust can be added)."""
    return AttestationService(
        store=store,
        authority=attestation_authority(state_dir),
        manufacturer_cas=lambda: trusted_manufacturer_cas(state_dir),
        nonce_ttl_s=nonce_ttl_s,
    )
