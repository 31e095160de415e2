"""More gateways on one machine: each in a process of its own, in the same share group.

A gateway's Python threads share one interpreter, so one process serves at most
one core's worth of requests. The server can start more gateway processes
(``sevenfold server --gateway-processes N``); each connects with its own
certificate (``sevenfold-server.<n>``) and subscribes in the fleet's share
group, so the broker hands every request to exactly one of them, just as it
does across replicas on several machines. Each child serves the same handlers
against the same database; the server supervises the children and restarts
one that dies.

The child reads its whole configuration from a 0600 JSON file in the state
directory (no secret on a command line), and exits when its parent dies or
when its gateway stays unhealthy, so the supervisor can start it afresh.
"""

from __future__ import annotations

import gc
import json
import logging
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType

from attestation_server.enrollment import EnrollmentService
from attestation_server.registry import DeviceRegistry
from attestation_server.trust_store import TrustStore
from device_runtime.core.errors import ConfigError, SevenfoldError
from device_runtime.ports.cpython.atomic_file import write_atomic
from fleet_platform.child_log import ChildLog
from fleet_platform.gateway import Gateway
from fleet_platform.gateway_limits import GatewayLimits
from fleet_platform.health import Health
from fleet_platform.pki import IssuedCredential
from fleet_platform.process_supervisor import ChildProcess, die_with_parent
from fleet_platform.storage import open_database
from sevenfold.attestation_setup import attestation_service
from sevenfold.failure_reporting import failure_report_handler
from update_service.update_history import UpdateHistory
from update_service.update_reports import UpdateReports

log = logging.getLogger(__name__)

UNHEALTHY_EXIT_S = 30.0
"""How long a child's gateway may stay unhealthy before the child exits to be restarted."""

REPORT_STALE_S = 5.0
"""A health report older than this means the child is not running its loop any more."""


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewaySpec:
    """Everything a gateway process needs; written by the server, read by the child."""

    database_url: str
    migrations: tuple[str, ...]
    host: str
    port: int
    ca_path: str
    cert_path: str
    key_path: str
    client_id: str
    share_group: str
    prefix: str
    heartbeat_interval: int
    state_dir: str
    """Where the fleet CA and the trusted manufacturer CAs are: the child issues passes too."""
    nonce_ttl_s: int
    attestation_gate: bool
    update_reports: bool
    """Whether the child serves devices' ``update-status`` reports too."""
    limits: dict[str, object]
    health_path: str
    """Where the child writes its gateway's health every second, for the server to report."""

    def write(self, path: Path) -> None:
        write_atomic(path, json.dumps(asdict(self), sort_keys=True).encode(), mode=0o600)

    @classmethod
    def read(cls, path: Path) -> GatewaySpec:
        try:
            raw = json.loads(path.read_text())
            raw["migrations"] = tuple(raw["migrations"])
            return cls(**raw)
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise ConfigError(f"gateway process configuration {path} is unusable: {exc}") from exc


class GatewayProcess(ChildProcess):
    """One child gateway process, in the shape :class:`ProcessSupervisor` watches."""

    def __init__(self, *, index: int, spec_path: Path, log_path: Path, health_path: Path) -> None:
        super().__init__()
        self.index = index
        self.spec_path = spec_path
        self.log = ChildLog(log_path)
        self.health_path = health_path

    @property
    def log_path(self) -> Path:
        return self.log.path

    @property
    def name(self) -> str:
        return f"gateway process {self.index}"

    def start(self) -> GatewayProcess:
        self.relaunch()
        return self

    def relaunch(self) -> None:
        with self._lock:
            if self._stopped:
                raise ConfigError(f"{self.name} was stopped; not launching it")
            try:
                descriptor = self.log.open_for_launch()
            except OSError as exc:
                raise ConfigError(f"cannot open {self.log.path}: {exc}") from exc
            with descriptor as output:
                try:
                    self._process = subprocess.Popen(
                        [sys.executable, "-m", "sevenfold.gateway_process", str(self.spec_path)],
                        stdin=subprocess.DEVNULL,
                        stdout=output,
                        stderr=subprocess.STDOUT,
                        preexec_fn=die_with_parent,
                    )
                except OSError as exc:
                    raise ConfigError(f"cannot launch {self.name}: {exc}") from exc

    def launch_output(self) -> str:
        return self.log.since_launch()

    def stop(self, timeout: float = 10.0) -> None:
        super().stop(timeout)
        self.log.close()


def serve(spec: GatewaySpec, stop: threading.Event) -> int:
    """Run one gateway until *stop* is set; 3 when it stayed unhealthy too long."""
    database = open_database(spec.database_url, migrations=[Path(p) for p in spec.migrations])
    registry = DeviceRegistry(database=database)
    gateway = Gateway(
        host=spec.host,
        port=spec.port,
        ca_path=Path(spec.ca_path),
        credential=IssuedCredential(cert_path=Path(spec.cert_path), key_path=Path(spec.key_path)),
        database=database,
        record_rejection=registry.record_rejection,
        client_id=spec.client_id,
        share_group=spec.share_group,
        prefix=spec.prefix,
        limits=GatewayLimits(**spec.limits),  # type: ignore[arg-type]
    )
    trust = TrustStore(database=database)
    EnrollmentService(
        registry=registry,
        heartbeat_interval=spec.heartbeat_interval,
        trust=trust if spec.attestation_gate else None,
    ).register(gateway)
    # Passes decided here reach the broker through the server's periodic refresh.
    attestation_service(trust, Path(spec.state_dir), nonce_ttl_s=spec.nonce_ttl_s).register(gateway)
    if spec.update_reports:
        history = UpdateHistory(database=database, security_event=trust.security_event)
        UpdateReports(history).register(gateway)
    failure_report_handler(database).register(gateway)
    gateway.start()
    gc.collect()
    gc.freeze()  # as the server does: keep full collections short on a long-lived heap
    unhealthy_for = 0.0
    try:
        while not stop.wait(1.0):
            health = gateway.health()
            _report(Path(spec.health_path), health)
            unhealthy_for = 0.0 if health.ok else unhealthy_for + 1.0
            if unhealthy_for >= UNHEALTHY_EXIT_S:
                log.error("gateway unhealthy for %.0fs (%s); exiting", unhealthy_for, health.detail)
                return 3
        return 0
    finally:
        gateway.stop()
        database.dispose()


def _report(path: Path, health: Health) -> None:
    document = {"ok": health.ok, "detail": health.detail, "at": time.time()}
    write_atomic(path, json.dumps(document).encode(), mode=0o600)


def read_report(path: Path, now: float) -> Health:
    """What a child last said of its gateway; stale or missing is unhealthy."""
    try:
        document = json.loads(path.read_text())
        ok, detail, at = bool(document["ok"]), str(document["detail"]), float(document["at"])
    except (OSError, ValueError, KeyError, TypeError):
        return Health(False, "has not reported its gateway's health")
    if now - at > REPORT_STALE_S:
        return Health(False, f"last reported {now - at:.0f} s ago")
    return Health(ok, detail)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        code = serve(GatewaySpec.read(Path(sys.argv[1])), stop)
    except SevenfoldError as exc:
        log.error("%s", exc.explain())
        code = 2
    sys.exit(code)


if __name__ == "__main__":
    main()
