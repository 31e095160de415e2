"""The verifier's handlers on a real database: passes, refusals, replays, clones, races.

Devices are real DICE roots of trust provisioned through the real registration
path; their evidence is what the device core builds. Each refusal must be a
contraindicated answer with its reason, a security event, no certificate and
no lost pass for anyone else; on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from attestation_server.attestation_service import AttestationService
from attestation_server.provisioning import ProvisioningRegistry, Registration
from attestation_server.tables import DeviceEvent
from attestation_server.trust_store import TrustStore
from device_runtime.core.attestor import Attestor
from device_runtime.rot.derived import DerivedRootOfTrust
from device_runtime.simulator import BootedImage, csr_pem, open_root_of_trust
from fleet_platform.gateway import Request
from fleet_platform.pki import CertificateAuthority
from fleet_platform.storage import Database
from tests.firmware_fixtures import SampleFirmware

NOW = datetime.now(UTC)
"""Certificates made here are valid from a few minutes ago: the tests run at the real time."""
HWMODEL = "board-a"


@dataclass
class Board:
    device_id: str
    rot: DerivedRootOfTrust
    deviceid_certificate: bytes
    image: BootedImage
    """What its first stage booted."""

    def attestor(self, *, image: BootedImage | None = None) -> Attestor:
        """Evidence for *image* (by default the one it booted)."""
        claimed = image or self.image
        return Attestor(
            rot=self.rot,
            device_id=self.device_id,
            deviceid_certificate=self.deviceid_certificate,
            hwmodel=HWMODEL,
            swname="app",
            swversion=claimed.version,
            security_version=claimed.security_counter,
            oemid=b"\x02\x5a\x7f",
            dbgstat=3,
            image_digest=claimed.image_hash,
            config_digest=b"c" * 32,
        )


@dataclass
class Verifier:
    database: Database
    service: AttestationService
    store: TrustStore
    fleet: CertificateAuthority
    maker: CertificateAuthority
    provisioning: ProvisioningRegistry
    directory: Path
    firmware: SampleFirmware

    def board(self, device_id: str, *, kind: str = "dice", version: str = "1.0.0") -> Board:
        """A board provisioned now, whose first stage booted the sample app's *version*."""
        image = self.firmware.booted[version]
        rot = open_root_of_trust(
            kind=kind, directory=self.directory / device_id, hwmodel=HWMODEL, image=image
        )
        csr = rot.csr(device_id)
        sign = self.maker.sign_dice_device_id_csr if kind == "dice" else self.maker.sign_csr
        certificate = sign(csr_pem(csr), required_common_name=device_id)
        self.provisioning.register(
            Registration(
                device_id=device_id, hwmodel=HWMODEL, rot_kind=kind, csr_der=csr,
                manufacturer_certificate=certificate.decode(), station="line-1",
            ),
            now=NOW,
        )  # fmt: skip
        der = x509.load_pem_x509_certificate(certificate).public_bytes(serialization.Encoding.DER)
        return Board(device_id=device_id, rot=rot, deviceid_certificate=der, image=image)

    def challenge(self, device_id: str, at: datetime = NOW) -> bytes:
        with self.database.transaction("challenge") as tx:
            body = self.service.challenge(Request(device_id, "challenge", {}, at), tx)
        nonce = body["nonce"]
        assert isinstance(nonce, bytes)
        return nonce

    def evidence(self, device_id: str, body: dict[str, Any], at: datetime = NOW) -> dict[str, Any]:
        with self.database.transaction("evidence") as tx:
            return self.service.evidence(Request(device_id, "evidence", body, at, True), tx)

    def attest(
        self, board: Board, *, attestor: Attestor | None = None, bootcount: int = 1,
        at: datetime = NOW,
    ) -> dict[str, Any]:  # fmt: skip
        nonce = self.challenge(board.device_id, at)
        body = (attestor or board.attestor()).body(nonce, bootcount, 5)
        return self.evidence(board.device_id, body, at)

    def security_events(self, device_id: str) -> list[tuple[str | None, str]]:
        with self.database.transaction("events") as tx:
            rows = tx.execute(
                select(DeviceEvent.code, DeviceEvent.reason).where(
                    DeviceEvent.device_id == device_id, DeviceEvent.kind == "security"
                )
            )
            return [(code, reason) for code, reason in rows]


@pytest.fixture
def verifier(database: Database, tmp_path: Path, sample_firmware: SampleFirmware) -> Verifier:
    fleet = CertificateAuthority.create(common_name="Fleet", directory=tmp_path / "fleet")
    maker = CertificateAuthority.create(
        common_name="Maker", directory=tmp_path / "maker", issues_issuers=True
    )
    store = TrustStore(database=database)
    store.endorse(
        hwmodel=HWMODEL, component="image", digest=sample_firmware.image_hash("1.0.0"),
        swversion=None, security_version=None, source="operator", now=NOW,
    )  # fmt: skip
    return Verifier(
        database=database,
        service=AttestationService(
            store=store, authority=fleet, manufacturer_cas=lambda: [maker.certificate]
        ),
        store=store,
        fleet=fleet,
        maker=maker,
        provisioning=ProvisioningRegistry(
            database=database, authority=fleet, manufacturer_cas=lambda: [maker.certificate]
        ),
        directory=tmp_path / "boards",
        firmware=sample_firmware,
    )


def _refused(answer: dict[str, Any], code: str) -> None:
    assert answer["status"] == "contraindicated", answer
    assert answer["code"] == code, answer
    assert "certificate" not in answer and "not_after" not in answer


def test_a_pass_is_a_24_hour_certificate_for_the_alias_key(verifier: Verifier) -> None:
    board = verifier.board("dev-1")
    answer = verifier.attest(board)
    assert answer["status"] == "warning"  # nobody endorsed its configuration
    certificate = x509.load_der_x509_certificate(answer["certificate"])
    point = certificate.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    assert point == board.rot.evidence_key().public_key() != board.rot.identity_key().public_key()
    assert certificate.subject.rfc4514_string() == "CN=dev-1"
    certificate.verify_directly_issued_by(verifier.fleet.certificate)
    # Issued now (the certificate authority's clock), for 24 hours.
    assert answer["not_after"] - time.time() == pytest.approx(24 * 3600, abs=5)
    now = datetime.now(UTC)
    assert verifier.store.granted(now) == ["dev-1"]
    assert verifier.store.granted(now + timedelta(hours=25)) == []


def test_replayed_evidence_is_refused_and_recorded(verifier: Verifier) -> None:
    board = verifier.board("dev-1")
    nonce = verifier.challenge("dev-1")
    body = board.attestor().body(nonce, 1, 5)
    assert verifier.evidence("dev-1", body)["status"] == "warning"
    _refused(verifier.evidence("dev-1", body), "unknown-nonce")
    assert "unknown-nonce" in {code for code, _ in verifier.security_events("dev-1")}


def test_a_late_answer_is_stale(verifier: Verifier) -> None:
    board = verifier.board("dev-1")
    nonce = verifier.challenge("dev-1")
    late = NOW + timedelta(seconds=61)
    _refused(verifier.evidence("dev-1", board.attestor().body(nonce, 1, 5), late), "stale-evidence")


def test_a_nonce_answers_only_the_device_it_was_issued_to(verifier: Verifier) -> None:
    board = verifier.board("dev-1")
    other = verifier.board("dev-2")
    nonce = verifier.challenge("dev-1")
    _refused(verifier.evidence("dev-2", other.attestor().body(nonce, 1, 5)), "unknown-nonce")
    # dev-1's challenge is still outstanding: the wrong device's answer did not consume it.
    assert verifier.evidence("dev-1", board.attestor().body(nonce, 1, 5))["status"] == "warning"


def test_garbage_is_refused_with_a_reason_and_a_security_event(verifier: Verifier) -> None:
    verifier.board("dev-1")
    verifier.challenge("dev-1")
    answer = verifier.evidence("dev-1", {"token": b"\xff\x00garbage"})
    assert answer["status"] == "contraindicated" and "certificate" not in answer
    assert verifier.security_events("dev-1"), "no security event for a refusal"
    assert verifier.store.granted(datetime.now(UTC)) == []


def test_a_boot_count_going_back_quarantines_until_released(verifier: Verifier) -> None:
    board = verifier.board("dev-1")
    assert verifier.attest(board, bootcount=5)["status"] == "warning"
    _refused(verifier.attest(board, bootcount=4), "boot-regressed")
    # A perfectly good answer afterwards proves nothing about which device gave it.
    _refused(verifier.attest(board, bootcount=6), "quarantined")
    assert verifier.store.granted(NOW) == []
    assert any(reason.startswith("quarantined") for _, reason in verifier.security_events("dev-1"))
    assert verifier.store.release("dev-1", now=NOW)
    assert verifier.attest(board, bootcount=7)["status"] == "warning"
    assert verifier.store.granted(NOW) == ["dev-1"]


def test_two_live_instances_of_one_identity_are_a_clone(verifier: Verifier) -> None:
    board = verifier.board("dev-1")
    assert verifier.attest(board, bootcount=3)["status"] == "warning"
    twin = board.attestor()  # same boot count, another boot seed: another running instance
    _refused(verifier.attest(board, attestor=twin, bootcount=3), "clone-suspected")
    assert verifier.store.standings("dev-1")[0].quarantined_at is not None


def test_a_deviceid_key_registered_under_two_ids_is_a_clone(verifier: Verifier) -> None:
    board = verifier.board("dev-1")
    rot = board.rot
    csr = rot.csr("dev-9")
    verifier.provisioning.register(
        Registration(
            device_id="dev-9", hwmodel=HWMODEL, rot_kind="dice", csr_der=csr,
            manufacturer_certificate=verifier.maker.sign_dice_device_id_csr(
                csr_pem(csr), required_common_name="dev-9"
            ).decode(),
            station="line-1",
        ),
        now=NOW,
    )  # fmt: skip
    _refused(verifier.attest(board), "key-shared")


def test_an_unendorsed_image_is_refused(verifier: Verifier) -> None:
    board = verifier.board("dev-1", version="1.1.0")
    _refused(verifier.attest(board), "unendorsed-image")


def test_claiming_another_image_than_the_one_booted_is_refused(verifier: Verifier) -> None:
    """The Alias certificate's FWID is what the first stage measured; the claim must match."""
    board = verifier.board("dev-1", version="1.1.0")
    claimed = verifier.firmware.booted["1.0.0"]
    _refused(verifier.attest(board, attestor=board.attestor(image=claimed)), "tcb-mismatch")


def test_a_software_root_is_refused_by_default(verifier: Verifier) -> None:
    board = verifier.board("dev-s", kind="software")
    _refused(verifier.attest(board), "rot-not-allowed")


def test_one_piece_of_evidence_sent_many_times_at_once_passes_once(verifier: Verifier) -> None:
    board = verifier.board("dev-1")
    body = board.attestor().body(verifier.challenge("dev-1"), 1, 5)
    start = threading.Barrier(8)

    def send(_: int) -> dict[str, Any]:
        start.wait()
        return verifier.evidence("dev-1", dict(body))

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(send, range(8)))
    assert sum("certificate" in answer for answer in answers) == 1
    assert {a["code"] for a in answers if "certificate" not in a} == {"unknown-nonce"}


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_no_mutated_token_gets_a_certificate_or_an_exception(
    verifier: Verifier, data: st.DataObject
) -> None:
    board = verifier.board("dev-h")
    nonce = verifier.challenge(board.device_id)
    original = board.attestor().body(nonce, 1, 5)["token"]
    assert isinstance(original, bytes)
    token = bytearray(original)
    for _ in range(data.draw(st.integers(1, 4))):
        # A fraction, not an index: the token's length varies (ECDSA signatures in DER).
        at = int(data.draw(st.floats(0, 1, exclude_max=True)) * len(token))
        token[at] ^= data.draw(st.integers(1, 255))
    assume(bytes(token) != original)  # two flips of one byte may cancel out
    answer = verifier.evidence(board.device_id, {"token": bytes(token)})
    assert answer["status"] == "contraindicated" and "certificate" not in answer


def test_evidence_nothing_authenticates_changes_no_standing(verifier: Verifier) -> None:
    """A stranger able to publish on the device's topic (any holder of a certificate in its
    name from any trusted manufacturer) must not be able to end its pass."""
    board = verifier.board("dev-1")
    assert verifier.attest(board)["status"] == "warning"
    for _ in range(5):
        verifier.challenge("dev-1")
        _refused(verifier.evidence("dev-1", {"token": b"\xa0"}), "bad-cose")
    stranger = verifier.board("dev-2")  # a valid token, but signed under another identity
    token = stranger.attestor().body(verifier.challenge("dev-1"), 1, 5)
    assert verifier.evidence("dev-1", token)["status"] == "contraindicated"
    assert verifier.store.granted(datetime.now(UTC)) == ["dev-1"]
    events = [code for code, _ in verifier.security_events("dev-1")]
    assert events.count("bad-cose") == 1, events  # once per window, not once per message


def test_an_unprovisioned_id_leaves_nothing_stored_but_one_event(verifier: Verifier) -> None:
    verifier.challenge("ghost-1")
    for _ in range(3):
        _refused(verifier.evidence("ghost-1", {"token": b"\xa0"}), "bad-cose")
    assert verifier.store.standings("ghost-1") == []
    assert len(verifier.security_events("ghost-1")) == 1


def test_a_few_challenges_stay_outstanding_so_a_stray_one_voids_nothing(
    verifier: Verifier,
) -> None:
    board = verifier.board("dev-1")
    at = iter(NOW + timedelta(milliseconds=n) for n in range(100))
    answered = verifier.challenge("dev-1", next(at))
    for _ in range(2):
        verifier.challenge("dev-1", next(at))  # requests from elsewhere, or late duplicates
    assert verifier.evidence("dev-1", board.attestor().body(answered, 1, 5))["status"] == "warning"
    oldest = verifier.challenge("dev-1", next(at))
    for _ in range(4):
        verifier.challenge("dev-1", next(at))
    _refused(verifier.evidence("dev-1", board.attestor().body(oldest, 2, 5)), "unknown-nonce")


def test_a_group_without_a_policy_follows_the_stored_default(verifier: Verifier) -> None:
    from attestation_server.attestation_policy import Policy

    verifier.store.set_policy("default", Policy(allowed_roots=frozenset({"tpm"})), now=NOW)
    board = verifier.board("dev-1")
    verifier.store.assign_group("dev-1", "typo-group")
    _refused(verifier.attest(board), "rot-not-allowed")


def test_an_enroll_from_a_later_boot_ends_the_pass_of_the_earlier_one(verifier: Verifier) -> None:
    """Rebooted without attesting: the pass belonged to another boot, perhaps other firmware."""
    from attestation_server.enrollment import EnrollmentService
    from attestation_server.registry import DeviceRegistry

    board = verifier.board("dev-1")
    assert verifier.attest(board, bootcount=3)["status"] == "warning"
    enrollment = EnrollmentService(
        registry=DeviceRegistry(database=verifier.database),
        heartbeat_interval=30,
        trust=verifier.store,
    )

    def enroll(boot_count: int) -> None:
        body = {
            "device_id": "dev-1", "hwmodel": HWMODEL, "swname": "app", "swversion": "1.0.0",
            "rot": "dice", "boot_count": boot_count,
        }  # fmt: skip
        with verifier.database.transaction("enroll") as tx:
            enrollment.enrollments([Request("dev-1", "enroll", body, datetime.now(UTC))], tx)

    enroll(3)  # the boot that attested
    assert verifier.store.granted(datetime.now(UTC)) == ["dev-1"]
    enroll(4)
    assert verifier.store.granted(datetime.now(UTC)) == []
