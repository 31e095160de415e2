"""Mosquitto configuration and ACL text for the fleet's mutual-TLS broker.

Kept apart from process handling so the exact policy the broker enforces can be
read and tested as text. The ACL relies on ``%u``, which mosquitto fills in from
the certificate CN because of ``use_identity_as_username``; ``%c`` would be the
client id, which any client picks freely.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from device_runtime.core.errors import TransportError

# One or more topic levels; no wildcards, no empty levels, no leading '$'.
_PREFIX = re.compile(r"^[A-Za-z0-9_-]+(?:/[A-Za-z0-9_-]+)*$")
# A server identity is a certificate CN used verbatim as a broker username.
_IDENTITY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class BrokerError(TransportError):
    """The broker could not be configured, started or reached."""

    code = "broker"


@dataclass(frozen=True)
class BrokerFiles:
    """Paths the configuration points mosquitto at."""

    ca_path: Path
    cert_path: Path
    key_path: Path
    acl_path: Path


def check_prefix(prefix: str) -> str:
    """Reject prefixes that would let an ACL line match more than the fleet's own tree."""
    if not isinstance(prefix, str) or not _PREFIX.fullmatch(prefix):
        raise BrokerError(
            f"topic prefix {prefix!r} must be levels of letters, digits, _ or - joined by /"
        )
    return prefix


def check_port(port: int) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise BrokerError(f"port {port!r} is not a TCP port number")
    return port


def acl_text(*, prefix: str, server_identities: tuple[str, ...]) -> str:
    """ACL granting servers the whole device tree and each device only its own two topics."""
    check_prefix(prefix)
    if not server_identities:
        raise BrokerError("at least one server identity is needed to reach the devices")
    lines = ["# Fleet servers: every device's up and down topics."]
    for identity in server_identities:
        if not isinstance(identity, str) or not _IDENTITY.fullmatch(identity):
            raise BrokerError(f"server identity {identity!r} is not a valid certificate CN")
        lines += [f"user {identity}", f"topic readwrite {prefix}/d/#", ""]
    lines += [
        "# Every client: publish to its own up topic, receive on its own down topic.",
        f"pattern write {prefix}/d/%u/up",
        f"pattern read {prefix}/d/%u/down",
        "",
    ]
    return "\n".join(lines)


def config_text(*, port: int, files: BrokerFiles, run_as: str) -> str:
    """Broker configuration: one loopback listener, client certificates required, no state."""
    check_port(port)
    for path in (files.ca_path, files.cert_path, files.key_path, files.acl_path):
        if any(ch in str(path) for ch in "\n\r"):
            raise BrokerError(f"path {str(path)!r} cannot be written into a mosquitto config")
    if not re.fullmatch(r"[A-Za-z0-9._-]+", run_as):
        raise BrokerError(f"user name {run_as!r} cannot be written into a mosquitto config")
    return "\n".join(
        [
            f"user {run_as}",
            "per_listener_settings false",
            "allow_anonymous false",
            "persistence false",
            "set_tcp_nodelay true",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            f"acl_file {files.acl_path}",
            "",
            f"listener {port} 127.0.0.1",
            "protocol mqtt",
            f"cafile {files.ca_path}",
            f"certfile {files.cert_path}",
            f"keyfile {files.key_path}",
            "tls_version tlsv1.2",
            "require_certificate true",
            "use_identity_as_username true",
            "use_username_as_clientid true",
            "",
        ]
    )
