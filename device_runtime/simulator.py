"""Simulated CPython devices: the real agent, ports and protocol, minus the board.

Each simulated device has its own directory (root-of-trust state, certificate,
durable counters), its own root of trust (the development-only software
backend by default, or DICE with its UDS in a file) and its own mTLS
connection, exactly like a Linux-class device running the runtime; only the
hardware is missing. Certificates come from a ``certify`` callable (a factory
CA) given the device's CSR, so the key never leaves the root of trust except
into the TLS library (``ports/cpython/tls_credential.py``), in memory.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from device_runtime.core.agent import DeviceAgent
from device_runtime.core.attesting_agent import AttestingAgent
from device_runtime.core.attestor import Attestor
from device_runtime.core.errors import ConfigError, SevenfoldError, TransportError
from device_runtime.ports.cpython.atomic_file import write_atomic
from device_runtime.ports.cpython.clock import SystemClock
from device_runtime.ports.cpython.crypto import random_bytes, sign_es256
from device_runtime.ports.cpython.storage import DirectoryStore
from device_runtime.ports.cpython.tls_credential import identity_key_file
from device_runtime.ports.cpython.transport import MqttTransport
from device_runtime.rot import dice
from device_runtime.rot.derived import DerivedRootOfTrust
from device_runtime.rot.software import SoftwareRootOfTrust

Certify = Callable[[bytes, str], bytes]
"""(CSR PEM, device id) -> certificate PEM."""

CERT_FILE = "device.crt"
FLEET_CERT_FILE = "fleet.crt"
"""The fleet certificate of the last pass, as the CPython TLS stack reads it."""
KeyFiles = Callable[[str], AbstractContextManager[Path]]
"""``"identity"`` or ``"evidence"`` -> where the TLS library reads that key, while open."""
UDS_DIRECTORY = "uds"
"""Below a DICE device's directory: the UDS store, which only the first stage reads."""
SIMULATED_KINDS = (SoftwareRootOfTrust.kind, dice.KIND)


@dataclass(frozen=True, slots=True)
class BootedImage:
    """What a board's first stage measured: the image's version, security counter and hash
    (the SHA256 TLV value of a verified image, ``device_runtime/core/signed_image.py``)."""

    version: str
    security_counter: int
    image_hash: bytes


NO_IMAGE = BootedImage(version="0.0.0", security_counter=0, image_hash=bytes(32))
"""What the first stage has measured before it loads an image: nothing. The factory's console
runs there (its DeviceID key does not depend on the image), and so do simulated devices that
never attest; only an image's own measurement can earn an attestation pass."""


def open_root_of_trust(
    *, kind: str, directory: Path, hwmodel: str = "sim-board-1", image: BootedImage = NO_IMAGE
) -> DerivedRootOfTrust:
    """A simulated device's root of trust, created on first use (a DICE UDS at "manufacture").

    A DICE first stage derives the Alias key from *image*'s hash and states its
    version and security counter in the Alias certificate, so a new image gives
    the device a new Alias key.
    """
    store = DirectoryStore(directory=directory)
    if kind == SoftwareRootOfTrust.kind:
        return SoftwareRootOfTrust.open(
            store=store, random_bytes=random_bytes, sign_es256=sign_es256
        )
    if kind != dice.KIND:
        raise ConfigError(f"a simulated device has a root of trust of kind {SIMULATED_KINDS}")
    uds = DirectoryStore(directory=directory / UDS_DIRECTORY)
    if uds.read(dice.UDS_KEY) is None:
        dice.manufacture(uds, random_bytes)
    return dice.DiceRootOfTrust.boot(
        uds_store=uds,
        store=store,
        firmware_measurement=image.image_hash,
        vendor="Sevenfold",
        model=hwmodel,
        version=image.version,
        svn=image.security_counter,
        random_bytes=random_bytes,
        sign_es256=sign_es256,
    )


def csr_pem(der: bytes) -> bytes:
    """The PEM form of a root of trust's DER CSR, for CAs that take PEM."""
    return x509.load_der_x509_csr(der).public_bytes(serialization.Encoding.PEM)


@dataclass(slots=True)
class SimulatedDevice:
    device_id: str
    directory: Path
    boot_count: int = 0
    beats: int = 0
    error: str | None = None
    attested: bool = False
    firmware: str | None = None
    """The version of the image it booted, once its application came up."""
    health: str | None = None
    """Why its application's health check failed; None when it passed (or never ran)."""
    readings: list[dict[str, int]] = field(default_factory=list)
    """What its application sampled at each acknowledged heartbeat."""
    slot: str | None = None
    """The firmware slot (A or B) it booted from, on boards with A/B slots."""
    trial: bool = False
    """Whether that image is on trial (booted once, not yet confirmed by its health check)."""
    reverted: str | None = None
    """The newer slot its bootloader passed over, and why (a failed trial, a refused image)."""
    pending: str | None = None
    """The version its update agent installed for the next boot to try, if any."""
    update_failure: str | None = None
    """Why its update agent's last check installed nothing though something was offered."""
    done: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True, slots=True, kw_only=True)
class BrokerAddress:
    host: str
    port: int
    ca_path: Path
    prefix: str
    recovery_port: int | None = None
    """The broker's recovery listener, for devices that attest (DeviceID certificate)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AttestedLink:
    """The agent's ``Link`` on CPython: the recovery listener with the DeviceID certificate,
    the fleet listener with each fleet certificate a pass brought."""

    device: SimulatedDevice
    broker: BrokerAddress
    deviceid_certificate: Path
    """PEM, as the factory installed it."""
    key_files: KeyFiles

    def recovery(self) -> MqttTransport:
        if self.broker.recovery_port is None:
            raise ConfigError("this broker address has no recovery listener to attest through")
        return self._transport(self.broker.recovery_port, self.deviceid_certificate, "identity")

    def fleet(self, certificate: bytes) -> MqttTransport:
        try:
            pem = x509.load_der_x509_certificate(certificate).public_bytes(
                serialization.Encoding.PEM
            )
        except ValueError as exc:
            raise TransportError(f"the fleet certificate of this pass is not DER: {exc}") from None
        path = self.device.directory / FLEET_CERT_FILE
        write_atomic(path, pem, mode=0o600)
        return self._transport(self.broker.port, path, "evidence")

    def _transport(self, port: int, certificate: Path, key: str) -> MqttTransport:
        try:
            with self.key_files(key) as key_path:
                return MqttTransport(
                    host=self.broker.host,
                    port=port,
                    client_id=self.device.device_id,
                    ca_path=self.broker.ca_path,
                    cert_path=certificate,
                    key_path=key_path,
                )
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            raise TransportError(f"TLS credentials refused: {exc}") from None


class SimulatedFleet:
    """Provisions and runs a handful of simulated devices, one thread each."""

    def __init__(
        self,
        *,
        directory: Path,
        broker: BrokerAddress,
        certify: Certify,
        count: int,
        hwmodel: str = "sim-board-1",
        swversion: str = "1.0.0",
        device_ids: Sequence[str] | None = None,
        root_of_trust: str = SoftwareRootOfTrust.kind,
    ) -> None:
        if root_of_trust not in SIMULATED_KINDS:
            raise ConfigError(f"a simulated device has a root of trust of kind {SIMULATED_KINDS}")
        self.root_of_trust = root_of_trust
        self.broker = broker
        self.certify = certify
        self.hwmodel = hwmodel
        self.swversion = swversion
        ids = (
            list(device_ids)
            if device_ids is not None
            else [f"sim-{n:04d}" for n in range(1, count + 1)]
        )
        self.devices = [
            SimulatedDevice(device_id=device_id, directory=directory / device_id)
            for device_id in ids
        ]
        self._threads: list[threading.Thread] = []

    def provision(self) -> None:
        """Factory step: a key in each device's root of trust and a certificate for it.

        A device already provisioned (over its console, by a factory station)
        keeps the certificate it has."""
        for device in self.devices:
            rot = self._open(device)
            cert_path = device.directory / CERT_FILE
            if not cert_path.exists():
                pem = self.certify(csr_pem(rot.csr(device.device_id)), device.device_id)
                write_atomic(cert_path, pem, mode=0o600)

    def start(self, *, beats: int) -> None:
        for device in self.devices:
            thread = threading.Thread(
                target=self._run, args=(device, beats), name=device.device_id, daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def wait(self, timeout: float) -> bool:
        """True when every device finished (successfully or not) within *timeout*."""
        return all(device.done.wait(timeout) for device in self.devices)

    def _open(self, device: SimulatedDevice) -> DerivedRootOfTrust:
        return open_root_of_trust(
            kind=self.root_of_trust, directory=device.directory, hwmodel=self.hwmodel
        )

    def _run(self, device: SimulatedDevice, beats: int) -> None:
        rot = self._open(device)
        with identity_key_file(rot) as key_path:
            transport = tls_transport(device=device, key_path=key_path, broker=self.broker)
        if transport is not None:
            run_agent(
                device=device,
                rot_kind=rot.kind,
                transport=transport,
                broker=self.broker,
                hwmodel=self.hwmodel,
                swversion=self.swversion,
                beats=beats,
            )


def tls_transport(
    *, device: SimulatedDevice, key_path: Path, broker: BrokerAddress
) -> MqttTransport | None:
    """The device's mTLS transport, its TLS context loaded from *key_path* now.

    *key_path* is wherever this device's TLS library reads its key: a memfd
    for a derived key (closed as soon as this returns), a TPM-wrapped blob for
    a TPM's. None, with the reason on *device*, if the TLS library refuses.
    """
    try:
        return MqttTransport(
            host=broker.host,
            port=broker.port,
            client_id=device.device_id,
            ca_path=broker.ca_path,
            cert_path=device.directory / CERT_FILE,
            key_path=key_path,
        )
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        device.error = f"TLS credentials refused: {exc}"
        device.done.set()
        return None


SWNAME = "sevenfold-sim"
BOARD_TIMEOUT_MS = 15_000
"""How long a simulated board waits for each answer (see ``run_agent``)."""


def run_agent(
    *,
    device: SimulatedDevice,
    rot_kind: str,
    broker: BrokerAddress,
    hwmodel: str,
    swversion: str,
    beats: int,
    transport: MqttTransport | None = None,
    link: AttestedLink | None = None,
    attestor: Attestor | None = None,
    on_beat: Callable[[], None] | None = None,
    after_beats: Callable[[DeviceAgent], None] | None = None,
) -> None:
    """Boot, (attest,) enroll and heartbeat *beats* times as *device*; the outcome lands on
    *device*. With *link* and *attestor* the device earns its broker access first;
    *on_beat* runs after each acknowledged heartbeat (an application sampling),
    *after_beats* once they are done, with the agent still connected (an update check)."""
    try:
        settings: dict[str, Any] = {
            "device_id": device.device_id,
            "hwmodel": hwmodel,
            "swname": SWNAME,
            "swversion": swversion,
            "rot": rot_kind,
            "clock": SystemClock(),
            "store": DirectoryStore(directory=device.directory),
            "random_bytes": random_bytes,
            "prefix": broker.prefix,
            # A simulated board shares its host with the fleet server and every other board:
            # a busy host (a full test run) answers evidence in more than the core's 5 s.
            "timeout_ms": BOARD_TIMEOUT_MS,
        }
        if link is not None and attestor is not None:
            agent: DeviceAgent = AttestingAgent(link=link, evidence=attestor, **settings)
        elif transport is not None:
            agent = DeviceAgent(transport=transport, **settings)
        else:
            raise ConfigError("a simulated device needs a transport, or a link and evidence")
    except SevenfoldError as exc:
        device.error = exc.explain()
        device.done.set()
        return
    try:
        device.boot_count = agent.boot()
        device.attested = isinstance(agent, AttestingAgent)
        agent.enroll()
        agent.run(beats=beats, on_beat=lambda _answer: _count_beat(device, on_beat))
        if after_beats is not None:
            after_beats(agent)
    except SevenfoldError as exc:
        device.error = exc.explain()
    finally:
        agent.transport.close()
        device.done.set()


def _count_beat(device: SimulatedDevice, then: Callable[[], None] | None) -> None:
    device.beats += 1
    if then is not None:
        then()
