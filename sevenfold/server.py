"""The fleet server process: storage, broker link, services and the REST API.

Attestation, updates and the passive monitor's receiving end are separate
packages with their own routes, handlers and tables; this module only wires the
ones a deployment asks for into one process. The process keeps no state of its
own beyond the database and its state directory, so several replicas can run
behind a load balancer against one PostgreSQL and one broker cluster: each
connects with its own certificate, and all of them subscribe in one MQTT share
group whose name comes from a secret in the shared database, so every device
request reaches exactly one of them.

With no broker configured the server runs Mosquitto itself, on a fixed port
(devices are configured with host and port) and under a supervisor that
restarts it when it dies; ``/healthz`` says unhealthy while it is down.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

import attestation_server
import attestation_server.api
import attestation_server.attestation_api
import attestation_server.provisioning
import failure_reports
import fleet_platform.storage
import passive_monitor.receiver
import passive_monitor.receiver.api
import update_service
import update_service.api
import update_service.history_api
from attestation_server.enrollment import EnrollmentService
from attestation_server.provisioning import BrokerInfo, ProvisioningRegistry
from attestation_server.registry import DeviceRegistry
from attestation_server.trust_store import TrustStore
from device_runtime.core.errors import CryptoError, StorageError, TransportError
from fleet_platform import api_tokens, bearer_auth
from fleet_platform.broker import MosquittoBroker
from fleet_platform.gateway import Gateway
from fleet_platform.health import Health
from fleet_platform.manufacturer_cas import trust_manufacturer_ca, trusted_manufacturer_cas
from fleet_platform.metrics import Metrics
from fleet_platform.pki import IssuedCredential, attestation_authority, fleet_authority
from fleet_platform.process_supervisor import ProcessSupervisor
from fleet_platform.request_limits import RequestLimits
from fleet_platform.server_config import RuntimeInfo, ServerConfig
from fleet_platform.server_replicas import replica_identities, share_group
from fleet_platform.state_directory import secure_state_directory
from fleet_platform.storage import Database, open_database
from fleet_platform.storage.fleet_secrets import SHARE_GROUP, fleet_secret
from fleet_platform.validation_errors import validation_failed
from passive_monitor.receiver.store import AssetRegistry
from sevenfold import health_api
from sevenfold.attestation_setup import attestation_service
from sevenfold.broker_grants import BrokerGrants
from sevenfold.failure_reporting import failure_report_handler
from sevenfold.gateway_process import GatewayProcess, GatewaySpec, read_report
from sevenfold.health_api import HealthCheck
from update_service.metadata_keeper import MetadataKeeper
from update_service.release_store import ReleaseStore
from update_service.repository_files import RepositoryFiles
from update_service.update_history import UpdateHistory
from update_service.update_reports import UpdateReports

log = logging.getLogger(__name__)

MIGRATIONS = (
    attestation_server.MIGRATIONS,
    passive_monitor.receiver.MIGRATIONS,
    fleet_platform.storage.MIGRATIONS,
    update_service.MIGRATIONS,
    failure_reports.MIGRATIONS,
)
"""Every service's migrations (and the platform's), in the one history they form."""

_HTTP_START_TIMEOUT_S = 15.0
HOUSEKEEPING_S = 600.0
"""How often the server prunes what it keeps without bound otherwise (the audit trail)."""


class FleetServer:
    """Starts and stops everything one server process runs."""

    def __init__(self, *, config: ServerConfig) -> None:
        self.config = config
        self.database: Database | None = None
        self.registry: DeviceRegistry | None = None
        self.broker: MosquittoBroker | None = None
        self.supervisor: ProcessSupervisor | None = None
        self.gateway: Gateway | None = None
        self.gateway_children: list[ProcessSupervisor] = []
        self.app: FastAPI | None = None
        self.metrics = Metrics()
        self.http_url = ""
        self._http: uvicorn.Server | None = None
        self._http_thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._housekeeping: threading.Thread | None = None
        self.trust: TrustStore | None = None
        self.grants: BrokerGrants | None = None
        self._grant_keeper: threading.Thread | None = None
        self.metadata_keeper: MetadataKeeper | None = None
        self.update_history: UpdateHistory | None = None
        self._metadata_keeping: threading.Thread | None = None

    def start(self) -> None:
        config = self.config
        self._stopping.clear()
        secure_state_directory(config.state_dir)
        for manufacturer_ca in config.manufacturer_cas:
            trust_manufacturer_ca(config.state_dir, manufacturer_ca)
        token = api_tokens.load_or_create(config.state_dir, name=api_tokens.OPERATOR)
        sensor_token = api_tokens.load_or_create(config.state_dir, name=api_tokens.SENSOR)
        factory_token = api_tokens.load_or_create(config.state_dir, name=api_tokens.FACTORY)
        if not config.attestation_gate:
            log.warning(
                "no attestation gate: every device with a fleet certificate gets its application"
                " topics, attested or not"
            )
        self.database = open_database(config.resolved_database_url, migrations=MIGRATIONS)
        self.database.upgrade()
        self.registry = DeviceRegistry(database=self.database)
        app = FastAPI(
            title="Sevenfold fleet server",
            version="0.1.0",
            description=(
                "Device attestation, enrollment, signed updates and the legacy assets and"
                " alerts passive sensors report."
            ),
        )
        app.add_exception_handler(StorageError, _storage_unavailable)
        app.add_exception_handler(RequestValidationError, validation_failed)
        app.add_middleware(RequestLimits)
        authorized = bearer_auth.bearer_dependency(token, name=api_tokens.OPERATOR)
        sensor_authorized = bearer_auth.bearer_dependency(sensor_token, name=api_tokens.SENSOR)
        factory_authorized = bearer_auth.bearer_dependency(factory_token, name=api_tokens.FACTORY)
        broker_host: str | None = None
        broker_port: int | None = None
        ca_path: Path | None = None
        try:
            if "attestation" in config.services:
                broker_host, broker_port, ca_path, credential = self._broker_link()
                group = share_group(fleet_secret(self.database, SHARE_GROUP))
                self.trust = TrustStore(database=self.database)
                attestation = attestation_service(
                    self.trust, config.state_dir, nonce_ttl_s=config.nonce_ttl_s
                )
                if self.broker is not None and config.attestation_gate:
                    self.grants = BrokerGrants(store=self.trust, broker=self.broker)
                    self.grants.refresh()
                self.gateway = Gateway(
                    host=broker_host,
                    port=broker_port,
                    ca_path=ca_path,
                    credential=credential,
                    database=self.database,
                    record_rejection=self.registry.record_rejection,
                    client_id=certificate_identity(credential.cert_path),
                    share_group=group,
                    prefix=config.prefix,
                    limits=config.gateway_limits,
                    metrics=self.metrics,
                    after_commit=self.grants.after_commit if self.grants is not None else None,
                )
                EnrollmentService(
                    registry=self.registry,
                    heartbeat_interval=config.heartbeat_interval,
                    trust=self.trust if config.attestation_gate else None,
                ).register(self.gateway)
                attestation.register(self.gateway)
                if "updates" in config.services:
                    self.update_history = UpdateHistory(
                        database=self.database, security_event=self.trust.security_event
                    )
                    UpdateReports(self.update_history).register(self.gateway)
                failure_report_handler(self.database).register(self.gateway)
                self.gateway.start()
                if self.grants is not None:
                    self._grant_keeper = threading.Thread(
                        target=self.grants.keep, args=(self._stopping,), name="grants", daemon=True
                    )
                    self._grant_keeper.start()
                self._start_gateway_children(broker_host, broker_port, ca_path, group)
                provisioning = ProvisioningRegistry(
                    database=self.database,
                    authority=fleet_authority(config.state_dir),
                    manufacturer_cas=lambda: trusted_manufacturer_cas(config.state_dir),
                )
                advertised = self.broker.advertised_host if self.broker is not None else broker_host
                link = BrokerInfo(
                    host=advertised,
                    port=broker_port,
                    ca_pem=ca_path.read_text(encoding="ascii"),
                    recovery_port=self.broker.recovery_port if self.broker is not None else None,
                )
                app.include_router(
                    attestation_server.api.router(
                        registry=self.registry,
                        authorized=authorized,
                        provisioning=provisioning,
                        trust=self.trust,
                    )
                )
                app.include_router(
                    attestation_server.attestation_api.router(
                        store=self.trust,
                        authorized=authorized,
                        request_attestation=self._request_attestation,
                        changed=self._grants_changed,
                        enforced=self.grants is not None,
                    )
                )
                app.include_router(
                    attestation_server.provisioning.router(
                        registry=provisioning, authorized=factory_authorized, broker=lambda: link
                    )
                )
            if "updates" in config.services:
                releases = ReleaseStore(config.state_dir)
                files = RepositoryFiles(root=releases.repository_dir)
                app.include_router(update_service.api.router(files=files))
                app.include_router(
                    update_service.history_api.router(
                        history=self.update_history or UpdateHistory(database=self.database),
                        authorized=authorized,
                    )
                )
                self.metadata_keeper = MetadataKeeper(releases)
                self._metadata_keeping = threading.Thread(
                    target=self.metadata_keeper.keep,
                    args=(self._stopping,),
                    name="tuf-keeper",
                    daemon=True,
                )
                self._metadata_keeping.start()
            if "monitor" in config.services:
                app.include_router(
                    passive_monitor.receiver.api.router(
                        assets=AssetRegistry(database=self.database),
                        devices=self.registry.list_devices,
                        operator=authorized,
                        sensor=sensor_authorized,
                    )
                )
            app.include_router(
                health_api.router(
                    checks=self._health_checks(), metrics=self.metrics, authorized=authorized
                )
            )
            self.app = app
            self._start_http(app)
            self._housekeeping = threading.Thread(
                target=self._keep_house, name="housekeeping", daemon=True
            )
            self._housekeeping.start()
        except BaseException:
            self.stop()
            raise
        RuntimeInfo(
            http_url=self.http_url,
            # Devices' name for the managed broker; the gateways reach it on loopback.
            broker_host=self.broker.advertised_host if self.broker is not None else broker_host,
            broker_port=broker_port,
            ca_path=str(ca_path) if ca_path else None,
            prefix=config.prefix,
            pid=os.getpid(),
            attestation_gate=config.attestation_gate,
        ).write(config.state_dir)
        log.info("fleet server ready at %s", self.http_url)

    def _initial_grants(self) -> list[str]:
        """Who holds a pass as the broker starts: a restart must not cut off attested devices."""
        assert self.database is not None
        return TrustStore(database=self.database).granted(datetime.now(UTC))

    def _request_attestation(self, device_id: str) -> None:
        if self.gateway is not None:
            self.gateway.push(device_id, "attest-now", {})

    def _grants_changed(self) -> None:
        """An operator changed a standing: the broker hears it now, not at the next refresh."""
        if self.grants is not None:
            self.grants.refresh()

    def _keep_house(self) -> None:
        """Prune the audit trail and spent challenges now and every HOUSEKEEPING_S; a failure
        waits for the next."""
        while True:
            registry = self.registry
            if registry is not None:
                try:
                    pruned = registry.prune_events(datetime.now(UTC))
                    if pruned:
                        log.info("pruned %d old events from the audit trail", pruned)
                    if self.trust is not None:
                        self.trust.prune_challenges(datetime.now(UTC))
                        self.trust.prune_history(datetime.now(UTC))
                except StorageError as exc:
                    log.warning("pruning the audit trail failed: %s", exc.reason)
            if self._stopping.wait(HOUSEKEEPING_S):
                return

    def _health_checks(self) -> dict[str, HealthCheck]:
        checks: dict[str, HealthCheck] = {"database": self._database_health}
        if self.gateway is not None:
            checks["gateway"] = self.gateway.health
        if self.supervisor is not None:
            checks["broker"] = self._broker_health
        if self.grants is not None:
            checks["grants"] = self.grants.health
        if self.metadata_keeper is not None:
            checks["updates"] = self.metadata_keeper.health
        for child in self.gateway_children:
            checks[child.child.name] = _child_gateway_health(child)
        return checks

    def _start_gateway_children(self, host: str, port: int, ca_path: Path, group: str) -> None:
        """Gateway processes 1..n-1, each with its own identity, supervised like the broker."""
        config = self.config
        # Servers present certificates of the CA the fleet listener always trusts.
        authority = attestation_authority(config.state_dir)
        directory = config.state_dir / "gateways"
        for index, identity in enumerate(replica_identities(config.gateway_processes)):
            if index == 0:
                continue
            credential = authority.issue_client(
                common_name=identity, directory=config.state_dir / "server-identity"
            )
            spec_path = directory / f"{index}.json"
            GatewaySpec(
                database_url=config.resolved_database_url,
                migrations=tuple(str(location) for location in MIGRATIONS),
                host=host,
                port=port,
                ca_path=str(ca_path),
                cert_path=str(credential.cert_path),
                key_path=str(credential.key_path),
                client_id=identity,
                share_group=group,
                prefix=config.prefix,
                heartbeat_interval=config.heartbeat_interval,
                state_dir=str(config.state_dir),
                nonce_ttl_s=config.nonce_ttl_s,
                attestation_gate=config.attestation_gate,
                update_reports="updates" in config.services,
                limits=asdict(config.gateway_limits),
                health_path=str(directory / f"{index}.health"),
            ).write(spec_path)
            child = GatewayProcess(
                index=index,
                spec_path=spec_path,
                log_path=directory / f"{index}.log",
                health_path=directory / f"{index}.health",
            ).start()
            self.gateway_children.append(ProcessSupervisor(child).start())

    def _database_health(self) -> Health:
        database = self.database
        if database is None or not database.reachable():
            return Health(False, "the database does not answer")
        return Health(True, f"{database.dialect} answers")

    def _broker_health(self) -> Health:
        if self.supervisor is None:
            return Health(False, "the managed broker is not running")
        return _supervised_health(self.supervisor)()

    def _broker_link(self) -> tuple[str, int, Path, IssuedCredential]:
        """Where this machine's gateways reach the broker, its CA, and their credential.

        For the managed broker that is its local address (loopback when it
        listens on every interface), not the name devices are given.
        """
        config = self.config
        if config.broker is not None:
            external = config.broker
            credential = IssuedCredential(cert_path=external.cert_path, key_path=external.key_path)
            return external.host, external.port, external.ca_path, credential
        authority = fleet_authority(config.state_dir)
        identities = replica_identities(config.gateway_processes)
        self.broker = MosquittoBroker.start(
            directory=config.state_dir / "broker",
            authority=authority,
            port=config.broker_port or None,
            recovery_port=config.recovery_port or None,
            listen=config.broker_listen,
            names=config.broker_names,
            prefix=config.prefix,
            server_identities=identities,
            manufacturer_cas=[
                ca.public_bytes(Encoding.PEM) for ca in trusted_manufacturer_cas(config.state_dir)
            ],
            grants=self._initial_grants() if config.attestation_gate else None,
            client_authority=attestation_authority(config.state_dir),
            fleet_clients=not config.attestation_gate,
        )
        self.supervisor = ProcessSupervisor(self.broker).start()
        credential = attestation_authority(config.state_dir).issue_client(
            common_name=identities[0], directory=config.state_dir / "server-identity"
        )
        return self.broker.host, self.broker.port, self.broker.ca_path, credential

    def _start_http(self, app: FastAPI) -> None:
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                host=self.config.http_host,
                port=self.config.http_port,
                log_level="warning",
                access_log=False,
            )
        )
        thread = threading.Thread(target=server.run, name="http", daemon=True)
        thread.start()
        deadline = time.monotonic() + _HTTP_START_TIMEOUT_S
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise TransportError(
                    f"HTTP API could not listen on {self.config.http_host}:{self.config.http_port}"
                )
            time.sleep(0.05)
        port = server.servers[0].sockets[0].getsockname()[1]
        self.http_url = f"http://{self.config.http_host}:{port}"
        self._http = server
        self._http_thread = thread

    def stop(self) -> None:
        self._stopping.set()
        if self._housekeeping is not None:
            self._housekeeping.join(timeout=30)
            self._housekeeping = None
        if self._grant_keeper is not None:
            self._grant_keeper.join(timeout=10)
            self._grant_keeper = None
        self.grants = None
        if self._metadata_keeping is not None:
            self._metadata_keeping.join(timeout=30)
            self._metadata_keeping = None
        self.metadata_keeper = None
        if self._http is not None and self._http_thread is not None:
            self._http.should_exit = True
            self._http_thread.join(timeout=10)
            self._http = None
        for child in self.gateway_children:
            child.stop()
        self.gateway_children.clear()
        if self.gateway is not None:
            self.gateway.stop()
            self.gateway = None
        if self.supervisor is not None:
            self.supervisor.stop()
            self.supervisor = None
        self.broker = None
        if self.database is not None:
            self.database.dispose()
            self.database = None

    def __enter__(self) -> FleetServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def _storage_unavailable(request: Request, error: Exception) -> JSONResponse:
    """Every route: a database outage is 503 with its reason, never a 500 and a traceback."""
    reason = error.reason if isinstance(error, StorageError) else type(error).__name__
    return JSONResponse(
        status_code=503,
        content={"detail": f"storage unavailable: {reason}"},
        headers={"Retry-After": "2"},
    )


def _supervised_health(supervisor: ProcessSupervisor) -> HealthCheck:
    def check() -> Health:
        health = supervisor.health()
        return Health(health.ok, health.detail)

    return check


def _child_gateway_health(supervisor: ProcessSupervisor) -> HealthCheck:
    """A child gateway is healthy when it runs and its own gateway says it is healthy."""
    process = _supervised_health(supervisor)

    def check() -> Health:
        running = process()
        if not running.ok:
            return running
        child = supervisor.child
        assert isinstance(child, GatewayProcess)
        return read_report(child.health_path, time.time())

    return check


def certificate_identity(cert_path: Path) -> str:
    """The CN of a client certificate: the name the broker knows this server by.

    It is also the MQTT client id, so that on a broker that does not derive the
    client id from the certificate, two replicas still never share one.
    """
    try:
        certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError) as exc:
        raise CryptoError(f"cannot read the server certificate {cert_path}: {exc}") from exc
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(names) != 1 or not isinstance(names[0].value, str):
        raise CryptoError(f"the server certificate {cert_path} must have exactly one CN")
    return names[0].value
