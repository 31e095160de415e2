"""A provisioned simulated board booting its firmware image and running its agent.

What a board does once the factory has been through its console and an image
is in slot A of its flash (:func:`install_firmware`): its first stage chooses
a slot as a bootloader does, with the device core's rule (``boot_selection``:
an image pending after an update gets one trial, a failed trial reverts) and
verifier, against the image-signing key the board trusts (``image-key.pem``,
as MCUboot's key is built into the bootloader) and the root of trust's
anti-rollback counter. It measures the image's hash and the configuration
into the root of trust, then loads the application from the image's payload
into a compartment of its own, a child process given the payload and nothing
of the board's (``device_runtime/application.py``), boots it and runs its
health check. An image on trial is confirmed when the check passes (the
counter then rises to its security counter); when it fails, the trial is
recorded as failed and the board stops, so its next boot reverts and says why.
Then the agent: read what was installed (device id, DeviceID and fleet
certificates, the broker's CA and address), attest through the broker's
recovery listener (when the factory installed one) to earn a fleet
certificate, connect with the key its root of trust holds, enroll and
heartbeat, the application sampling its sensors at every acknowledged beat.
An image no slot may boot, or an application that crashes on boot, stops the
board there; a confirmed image whose health check fails still runs (there is
nothing older to revert to) and the outcome says why.

A TPM board needs this process of its own: OpenSSL reads the configuration
that loads its tpm2 provider once per process (``ports/cpython/tpm_tls.py``),
so it is started with that environment.

    python -m device_runtime.simulated_board --dir D --kind tpm --hwmodel M [--beats N]

It prints one JSON line: device id, boot count, beats answered, the firmware
version booted, the failed health check's reason, the readings, the slot
booted, whether it is on trial, what was reverted and why, and the error (or
null), and exits 0 only if the image booted, passed its health check and
every beat was answered. The readings stay in this outcome: the heartbeat's schema
(``device_runtime/core/protocol.py``) has no field for them.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from device_runtime.application import Application, ApplicationError
from device_runtime.console_device import BROKER_CA_FILE, ROOTS, export_credentials
from device_runtime.core import evidence
from device_runtime.core.attestor import Attestor
from device_runtime.core.boot_selection import Boot, select
from device_runtime.core.console import read_installed
from device_runtime.core.download import Downloader
from device_runtime.core.errors import ConfigError, Contraindicated, SevenfoldError
from device_runtime.core.http_client import http_get
from device_runtime.core.image_trust import ImageTrust
from device_runtime.core.retry_schedule import RetrySchedule
from device_runtime.core.slots import HEALTH_FAILED, Slot, slot_pair
from device_runtime.core.trial_boot import confirm, fail_trial
from device_runtime.core.tuf.file_directory import FileDirectory
from device_runtime.core.tuf.updater import Updater
from device_runtime.core.update_agent import UpdateAgent
from device_runtime.core.update_status import UpdateReporter
from device_runtime.ports.cpython import crypto
from device_runtime.ports.cpython.atomic_file import write_atomic
from device_runtime.ports.cpython.block_device import ERASE_SIZE, FileBlockDevice
from device_runtime.ports.cpython.bounded_file import MAX_PEM_FILE, read_bounded
from device_runtime.ports.cpython.clock import SystemClock
from device_runtime.ports.cpython.crypto import random_bytes, verify_ecdsa_der
from device_runtime.ports.cpython.storage import DirectoryStore
from device_runtime.ports.cpython.tuf_client import LIMITS

if TYPE_CHECKING:
    from device_runtime.core.agent import DeviceAgent
    from device_runtime.core.port_types import MonotonicCounters, RootOfTrust

from device_runtime.simulator import (
    SIMULATED_KINDS,
    SWNAME,
    AttestedLink,
    BootedImage,
    BrokerAddress,
    SimulatedDevice,
    open_root_of_trust,
    run_agent,
    tls_transport,
)

DEVICEID_CERT_FILE = "deviceid.crt"
FLASH_FILE = "flash.img"
"""The board's flash: firmware slots A and B (``device_runtime/core/slots.py``)."""
IMAGE_KEY_FILE = "image-key.pem"
"""The public key the board's first stage accepts images from (PEM SubjectPublicKeyInfo)."""
SLOT_SIZE = 256 * 1024
"""Bytes of image each of the board's slots holds; each also has a sector for its trailer."""
FLASH_SIZE = 2 * (SLOT_SIZE + ERASE_SIZE)
UPDATES_DIR = "updates"
"""The update agent's durable state: the download record, what was tried and reported."""
TUF_DIR = "tuf"
"""Under it, the TUF metadata the board trusts (``root.json`` from the factory on)."""
REPOSITORY_KEY = "repository-url"


OEMID = b"\x02\x5a\x7f"
"""The simulated boards' maker: an IEEE OUI-shaped identifier (EAT ``oemid``)."""
DBGSTAT_DISABLED_PERMANENTLY = 3
"""EAT ``dbgstat`` a simulated board reports: it has no debug port at all."""


@contextlib.contextmanager
def _key_file(rot: object, kind: str, directory: Path, key: str = "identity") -> Iterator[Path]:
    """Where this board's TLS library reads *key* (``identity`` or ``evidence``) from."""
    if kind == "tpm":
        from device_runtime.ports.cpython import tpm_tls
        from device_runtime.rot.tpm import TpmRootOfTrust

        assert isinstance(rot, TpmRootOfTrust)
        yield tpm_tls.write_key_file(rot, directory)  # its evidence key is the DeviceID key
        return
    from device_runtime.ports.cpython.tls_credential import key_file
    from device_runtime.rot.derived import DerivedRootOfTrust

    assert isinstance(rot, DerivedRootOfTrust)
    with key_file(rot.identity_key() if key == "identity" else rot.evidence_key()) as path:
        yield path


def configuration_digest(record: dict[str, object], prefix: str) -> bytes:
    """SHA-256 of what configures the board: where it connects and under which topics."""
    text = f"{record['broker_host']}:{record['broker_port']}:{record.get('recovery_port')}:{prefix}"
    return hashlib.sha256(text.encode()).digest()


def board_attestor(
    *,
    rot: RootOfTrust,
    device_id: str,
    deviceid_certificate: bytes,
    hwmodel: str,
    image: BootedImage,
    config_digest: bytes,
) -> Attestor:
    """The attestor of a simulated board running *image*: one place says which claims a
    board makes (our OEM id, debug disabled for good, the measured image), so the boards,
    the fleet tests and the flood bench all present the same evidence."""
    return Attestor(
        rot=rot,
        device_id=device_id,
        deviceid_certificate=deviceid_certificate,
        hwmodel=hwmodel,
        swname=SWNAME,
        swversion=image.version,
        security_version=image.security_counter,
        oemid=OEMID,
        dbgstat=DBGSTAT_DISABLED_PERMANENTLY,
        image_digest=image.image_hash,
        config_digest=config_digest,
    )


@dataclass(slots=True, kw_only=True)
class BoardFlash:
    """What the first stage leaves the board: its open flash, its slots, the rule images are
    held to, the boot it chose (slot, verified image, trial, what was reverted and why) and
    the application payload of the image it booted."""

    device: FileBlockDevice
    slots: list[Slot]
    trust: ImageTrust
    boot: Boot
    payload: bytes

    def close(self) -> None:
        self.device.close()


def open_flash(directory: Path) -> FileBlockDevice:
    """The board's flash file, created erased on first use."""
    return FileBlockDevice(path=directory / FLASH_FILE, size=FLASH_SIZE)


def install_update_trust(directory: Path, *, root: bytes, repository_url: str) -> None:
    """Give the board the update service's trusted TUF root and where its repository is
    served (``…/tuf``): as its image key, the factory's to install, never the network's."""
    store = DirectoryStore(directory=directory / UPDATES_DIR)
    metadata = DirectoryStore(directory=directory / UPDATES_DIR / TUF_DIR)
    metadata.write("root.json", root)
    store.write(REPOSITORY_KEY, repository_url.rstrip("/").encode())


def update_agent(directory: Path, hwmodel: str, agent: DeviceAgent | None) -> UpdateAgent | None:
    """The board's update agent, reporting through *agent* (when it has one); None when the
    factory gave the board no update trust (:func:`install_update_trust`)."""
    store = DirectoryStore(directory=directory / UPDATES_DIR)
    url = store.read(REPOSITORY_KEY)
    if url is None:
        return None
    clock = SystemClock()
    updater = Updater(
        metadata_store=FileDirectory(str(directory / UPDATES_DIR / TUF_DIR)),
        fetcher=http_get,
        crypto=crypto,
        clock=clock,
        metadata_url=url.decode() + "/metadata/",
        targets_store=None,
        targets_url=url.decode() + "/targets/",
        limits=LIMITS,
    )
    schedule = RetrySchedule(clock, random_bytes, base_ms=200, cap_ms=5_000, attempts=5)
    return UpdateAgent(updater=updater, downloader=Downloader(store, schedule), store=store,
                       model=hwmodel,
                       reporter=None if agent is None else UpdateReporter(agent))  # fmt: skip


def install_firmware(
    directory: Path, *, image: bytes, image_key: ec.EllipticCurvePublicKey
) -> None:
    """Put *image* in the board's slot and make *image_key* the key its first stage trusts:
    the factory fixes the key, an update replaces the image."""
    pem = image_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    write_atomic(directory / IMAGE_KEY_FILE, pem, mode=0o600)
    device = open_flash(directory)
    try:
        slots = slot_pair(device)
        for slot in slots:
            slot.erase()
        if len(image) > slots[0].capacity:
            raise ConfigError(f"a {len(image)}-byte image does not fit a {SLOT_SIZE}-byte slot")
        slots[0].area.write_at(0, image)
        slots[0].area.flush()
        slots[0].provision(1)
    finally:
        device.close()


def first_stage(directory: Path, counters: MonotonicCounters) -> BoardFlash:
    """Choose the slot to boot and verify its image, as a bootloader would.

    The rule is the device core's (``boot_selection``): a pending image gets one
    trial, a failed trial reverts, and nothing boots that the board's key did not
    sign or whose security counter is below the root of trust's *counters*.
    ImageError with every slot's refusal when nothing may boot; ConfigError when
    the board has no key or no flash. The payload is read from the chosen slot
    after its image verified, by this process alone: the application never runs
    with the board's files (``application_compartment``).
    """
    pem = read_bounded(directory / IMAGE_KEY_FILE, MAX_PEM_FILE, what="image key")
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError:
        raise ConfigError(f"{IMAGE_KEY_FILE} is not a PEM public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ConfigError(f"{IMAGE_KEY_FILE} is not an ECDSA key")
    if not (directory / FLASH_FILE).exists():
        raise ConfigError(f"the board has no firmware: no {FLASH_FILE} in {directory}")
    point = key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    device = open_flash(directory)
    try:
        slots = slot_pair(device)
        trust = ImageTrust(point, verify_ecdsa_der, counters, chunk_size=64 * 1024)
        boot = select(slots, trust)
        image = boot.image
        payload = slots[boot.slot].area.read_at(image.header_size, image.payload_size)
    except BaseException:
        device.close()
        raise
    return BoardFlash(device=device, slots=slots, trust=trust, boot=boot, payload=payload)


def run_board(
    *, directory: Path, kind: str, hwmodel: str, beats: int, prefix: str
) -> SimulatedDevice:
    """Boot the provisioned board in *directory* from its slot and run it; the outcome is on
    the returned device."""
    record = read_installed(DirectoryStore(directory=directory))
    if record is None or export_credentials(directory) is None:
        raise SystemExit(f"{directory}: the board is not provisioned")
    device = SimulatedDevice(device_id=str(record["device_id"]), directory=directory)
    recovery = record.get("recovery_port")
    broker = BrokerAddress(
        host=str(record["broker_host"]),
        port=int(record["broker_port"]),  # type: ignore[call-overload]
        ca_path=directory / BROKER_CA_FILE,
        prefix=prefix,
        recovery_port=recovery if isinstance(recovery, int) else None,
    )
    config_digest = configuration_digest(record, prefix)
    try:
        # The counters do not depend on the image (a DICE board's are keyed by its UDS
        # alone), so the bootloader's root of trust is opened before any image is chosen.
        counters: RootOfTrust = (
            open_root_of_trust(kind=kind, directory=directory, hwmodel=hwmodel)
            if kind in SIMULATED_KINDS
            else ROOTS[kind](directory)
        )
        flash = first_stage(directory, counters)
    except SevenfoldError as exc:
        device.error = exc.explain()
        return device
    with contextlib.closing(flash):
        return _boot(flash, device, counters, broker=broker, record=record, kind=kind,
                     hwmodel=hwmodel, beats=beats, config_digest=config_digest)  # fmt: skip


def _boot(
    flash: BoardFlash,
    device: SimulatedDevice,
    counters: RootOfTrust,
    *,
    broker: BrokerAddress,
    record: dict[str, object],
    kind: str,
    hwmodel: str,
    beats: int,
    config_digest: bytes,
) -> SimulatedDevice:
    """Everything after the first stage chose an image: measure it, start its application,
    settle its trial, run the agent."""
    boot = flash.boot
    device.slot = flash.slots[boot.slot].name
    device.trial = boot.trial
    if boot.reverted is not None:
        device.reverted = f"slot {flash.slots[boot.reverted].name}: {boot.revert_reason}"
    verified = boot.image
    image = BootedImage(verified.version, verified.security_counter, verified.image_hash)
    try:
        rot = (
            open_root_of_trust(kind=kind, directory=device.directory, hwmodel=hwmodel, image=image)
            if kind in SIMULATED_KINDS
            else counters
        )
        evidence.measure_boot(rot, image.image_hash, config_digest)
        application = Application(flash.payload, label=f"firmware {image.version}")
    except SevenfoldError as exc:
        device.error = exc.explain()
        return device
    directory = device.directory
    with application:  # the compartment lives while the board runs
        try:
            application.boot(device.device_id)
        except ApplicationError as exc:
            device.error = exc.explain()
            return device
        booted = time.monotonic()
        device.firmware = image.version
        try:
            device.health = application.health_check()
        except ApplicationError as exc:  # a health check that crashes has failed
            device.health = exc.reason
        if boot.trial and not _settle_trial(flash, device):
            return device

        def sample() -> None:
            device.readings.append(application.sample(int(time.monotonic() - booted)))

        def check_for_update(agent: DeviceAgent | None) -> None:
            try:
                updates = update_agent(directory, hwmodel, agent)
            except SevenfoldError as exc:  # no trusted root, or one that does not parse
                device.update_failure = exc.explain()
                return
            if updates is not None:
                if agent is not None:
                    updates.settle(flash.slots, boot)
                device.pending = updates.update(flash.slots, boot, flash.trust)
                device.update_failure = updates.failure

        agent = functools.partial(run_agent, device=device, rot_kind=rot.kind, broker=broker,
                                  hwmodel=hwmodel, swversion=image.version, beats=beats,
                                  on_beat=sample, after_beats=check_for_update)  # fmt: skip
        if broker.recovery_port is None:
            with _key_file(rot, kind, directory) as key_path:
                transport = tls_transport(device=device, key_path=key_path, broker=broker)
            if transport is not None:
                agent(transport=transport)
            return device
        deviceid = x509.load_der_x509_certificate(cast(bytes, record["device-cert"]))
        deviceid_path = directory / DEVICEID_CERT_FILE
        write_atomic(deviceid_path, deviceid.public_bytes(serialization.Encoding.PEM), mode=0o600)
        attestor = board_attestor(
            rot=rot,
            device_id=device.device_id,
            deviceid_certificate=deviceid.public_bytes(serialization.Encoding.DER),
            hwmodel=hwmodel,
            image=image,
            config_digest=config_digest,
        )
        link = AttestedLink(
            device=device,
            broker=broker,
            deviceid_certificate=deviceid_path,
            key_files=lambda key: _key_file(rot, kind, directory, key),
        )
        agent(link=link, attestor=attestor)
        if device.error is not None and device.error.startswith(Contraindicated.code):
            # Refused by its verifier, the board is cut off from its application plane, not
            # from its update service (as Azure Sphere recovers devices): a signed release
            # may bring back an image the verifier accepts. It cannot report, so it does not.
            check_for_update(None)
        return device


def _settle_trial(flash: BoardFlash, device: SimulatedDevice) -> bool:
    """Confirm the image on trial if its health check passed, else fail its trial so that
    the next boot reverts to the image before it; False when the board must reset now.

    The application's health check is definite (it passed, or it failed and says why),
    and bounded by the compartment's own timeouts, so it is not polled: a check that
    hangs is killed with the compartment and counts as failed.
    """
    if device.health is None:
        confirm(flash.slots, flash.boot, flash.trust)
        device.trial = False
        return True
    fail_trial(flash.slots, flash.boot, HEALTH_FAILED)
    device.error = f"trial-failed: {device.firmware} failed its health check: {device.health}"
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--kind", choices=sorted(ROOTS), required=True)
    parser.add_argument("--hwmodel", required=True)
    parser.add_argument("--beats", type=int, default=3)
    parser.add_argument("--prefix", default="sevenfold")
    args = parser.parse_args()
    device = run_board(
        directory=args.dir,
        kind=args.kind,
        hwmodel=args.hwmodel,
        beats=args.beats,
        prefix=args.prefix,
    )
    print(
        json.dumps(
            {
                "device_id": device.device_id,
                "boot_count": device.boot_count,
                "attested": device.attested,
                "beats": device.beats,
                "firmware": device.firmware,
                "health": device.health,
                "readings": device.readings,
                "slot": device.slot,
                "trial": device.trial,
                "reverted": device.reverted,
                "pending": device.pending,
                "update_failure": device.update_failure,
                "error": device.error,
            }
        ),
        flush=True,
    )
    healthy = device.error is None and device.health is None
    sys.exit(0 if healthy and device.beats == args.beats else 1)


if __name__ == "__main__":
    main()
