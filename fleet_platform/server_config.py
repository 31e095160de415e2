"""Where a fleet server keeps its state and how it reaches its broker."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from device_runtime.core import protocol
from device_runtime.core.errors import ConfigError, SevenfoldError
from device_runtime.ports.cpython.atomic_file import write_atomic
from fleet_platform.broker_config import (
    DEFAULT_BROKER_PORT,
    DEFAULT_LISTEN_ADDRESS,
    DEFAULT_RECOVERY_PORT,
)
from fleet_platform.gateway_limits import GatewayLimits

SERVICES = ("attestation", "updates", "monitor")
DEFAULT_HTTP_PORT = 8770
RUNTIME_FILE = "server.json"
MAX_GATEWAY_PROCESSES = 16


class NoServer(SevenfoldError):
    """No running server could be found for this state directory."""

    code = "no-server"


def default_state_dir() -> Path:
    """``$SEVENFOLD_STATE``, else the XDG state directory."""
    explicit = os.environ.get("SEVENFOLD_STATE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "sevenfold"


DEFAULT_NONCE_TTL_S = 60
"""How long a challenge may be answered: long enough for a slow device to sign, short enough
that a recorded answer is useless soon after."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ExternalBroker:
    """A broker someone else runs (Mosquitto cluster, EMQX, HiveMQ) that does mTLS."""

    host: str
    port: int
    ca_path: Path
    cert_path: Path
    key_path: Path


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerConfig:
    state_dir: Path
    database_url: str | None = None
    http_host: str = "127.0.0.1"
    http_port: int = DEFAULT_HTTP_PORT
    broker: ExternalBroker | None = None
    prefix: str = protocol.DEFAULT_PREFIX
    heartbeat_interval: int = 30
    services: tuple[str, ...] = SERVICES
    broker_port: int = DEFAULT_BROKER_PORT
    """Port of the managed broker (0: any free port, for tests); ignored with an external one."""
    broker_listen: str = DEFAULT_LISTEN_ADDRESS
    """Address the managed broker listens on: loopback, one of this machine's, or every
    interface (``0.0.0.0``, ``::``); ignored with an external broker."""
    broker_names: tuple[str, ...] = ()
    """DNS names or addresses devices use to reach the managed broker, put into its
    certificate; the first is what ``server.json`` tells local tools."""
    gateway_limits: GatewayLimits = field(default_factory=GatewayLimits)
    gateway_processes: int = 1
    """Gateways serving devices: one in the server process, the rest in children."""
    recovery_port: int = DEFAULT_RECOVERY_PORT
    """Port of the managed broker's recovery listener (0: any free port, for tests), where a
    device with only its DeviceID certificate reaches the attestation topics."""
    attestation_gate: bool = True
    """The managed broker grants a device its application topics only while it holds a pass
    (a fleet certificate from a passing attestation). False grants them to every certified
    device, attested or not: for fleets that cannot attest yet, and said so at start."""
    nonce_ttl_s: int = DEFAULT_NONCE_TTL_S
    """How long an attestation challenge may be answered."""
    manufacturer_cas: tuple[Path, ...] = ()
    """PEM files of manufacturer CAs to trust (copied into the state directory at start,
    added to those trusted before): factory registrations need a DeviceID certificate
    one of them issued."""

    def __post_init__(self) -> None:
        unknown = set(self.services) - set(SERVICES)
        if unknown or not self.services:
            raise ConfigError(f"services must be a non-empty subset of {SERVICES}")
        if not 1 <= self.gateway_processes <= MAX_GATEWAY_PROCESSES:
            raise ConfigError(f"gateway processes must be 1..{MAX_GATEWAY_PROCESSES}")
        if self.gateway_processes > 1 and self.broker is not None:
            raise ConfigError(
                "extra gateway processes need the managed broker; with an external one, run a"
                " replica per certificate instead"
            )
        if not 1 <= self.heartbeat_interval <= 86400:
            raise ConfigError("heartbeat interval must be 1..86400 seconds")
        if not 5 <= self.nonce_ttl_s <= 3600:
            raise ConfigError("an attestation challenge lives 5..3600 seconds")

    @property
    def resolved_database_url(self) -> str:
        """SQLite in the state directory unless a URL (e.g. PostgreSQL) was given."""
        return self.database_url or f"sqlite:///{self.state_dir / 'sevenfold.db'}"


@dataclass(frozen=True, slots=True, kw_only=True)
class RuntimeInfo:
    """What a running server publishes in its state dir for local tools to find it."""

    http_url: str
    broker_host: str | None
    broker_port: int | None
    ca_path: str | None
    prefix: str
    pid: int
    attestation_gate: bool = True
    """Whether the broker gives devices their application topics only with a pass."""

    def write(self, state_dir: Path) -> None:
        data = json.dumps(
            {
                "http_url": self.http_url,
                "broker_host": self.broker_host,
                "broker_port": self.broker_port,
                "ca_path": self.ca_path,
                "prefix": self.prefix,
                "pid": self.pid,
                "attestation_gate": self.attestation_gate,
            },
            indent=2,
        )
        write_atomic(state_dir / RUNTIME_FILE, data.encode(), mode=0o600)

    @classmethod
    def read(cls, state_dir: Path) -> RuntimeInfo | None:
        try:
            raw = json.loads((state_dir / RUNTIME_FILE).read_text())
            return cls(
                http_url=str(raw["http_url"]),
                broker_host=raw["broker_host"],
                broker_port=raw["broker_port"],
                ca_path=raw["ca_path"],
                prefix=str(raw["prefix"]),
                pid=int(raw["pid"]),
                attestation_gate=bool(raw.get("attestation_gate", True)),
            )
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{state_dir / RUNTIME_FILE} is damaged: {exc}") from exc
