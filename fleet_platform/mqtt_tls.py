"""Client-side TLS settings for reaching the fleet broker.

Every client of the broker (server, tools, tests) must verify the broker against
the fleet CA and present its own certificate; building the context in one place
keeps anyone from quietly relaxing either check.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from device_runtime.core.errors import CryptoError
from fleet_platform.pki import IssuedCredential


def client_context(*, ca_path: Path, credential: IssuedCredential) -> ssl.SSLContext:
    """TLS 1.2+ context that checks the broker's name and chain and offers *credential*."""
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca_path))
    except (OSError, ssl.SSLError) as exc:
        raise CryptoError(f"cannot load the fleet CA {ca_path}: {exc}") from exc
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    try:
        context.load_cert_chain(
            certfile=str(credential.cert_path), keyfile=str(credential.key_path)
        )
    except (OSError, ssl.SSLError) as exc:
        raise CryptoError(
            f"cannot load the client credential {credential.cert_path}: {exc}"
        ) from exc
    return context
