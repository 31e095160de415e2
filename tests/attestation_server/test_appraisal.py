"""The verifier against real DICE and software devices: what passes, and one test per refusal.

Tokens are built by cbor2 and by pycose (``evidence_tokens``), chains by the
real roots of trust and a real manufacturer CA; TPM evidence is in
``test_appraisal_tpm.py``.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import cbor2
import pytest
from cryptography import x509
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attestation_server.appraisal import (
    CODES,
    AttestationResult,
    Challenge,
    Endorsement,
    History,
    ProvenDevice,
    appraise,
)
from attestation_server.attestation_policy import Policy
from tests.attestation_server import evidence_tokens as tokens
from tests.attestation_server.evidence_tokens import Device


@dataclass
class World:
    maker: x509.Certificate
    stranger: x509.Certificate
    dice: Device
    other_dice: Device
    foreign_dice: Device
    software: Device
    old_firmware: Device


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("appraisal")
    maker = tokens.manufacturer(root / "maker")
    stranger = tokens.manufacturer(root / "stranger", "Stranger CA")
    return World(
        maker=maker.certificate,
        stranger=stranger.certificate,
        dice=tokens.dice_device(maker, root / "dice"),
        other_dice=tokens.dice_device(maker, root / "other", "board-a-2"),
        foreign_dice=tokens.dice_device(stranger, root / "foreign"),
        software=tokens.software_device(maker, root / "software"),
        old_firmware=tokens.dice_device(
            maker, root / "dice", image=hashlib.sha256(b"old").digest(), svn=1
        ),
    )


_DEFAULT = object()


def judge(
    world: World,
    token: bytes,
    *,
    device: Device | None = None,
    proven: ProvenDevice | object | None = _DEFAULT,
    challenge: Challenge | object | None = _DEFAULT,
    policy: Policy | None = None,
    endorsements: Sequence[Endorsement] | None = None,
    history: History = tokens.FIRST_ATTESTATION,
    cas: Sequence[x509.Certificate] | None = None,
    now: datetime | None = None,
) -> AttestationResult:
    device = device or world.dice
    result = appraise(
        token=token,
        quote=None,
        quote_signature=None,
        challenge=tokens.challenge() if challenge is _DEFAULT else challenge,  # type: ignore[arg-type]
        device=device.proven() if proven is _DEFAULT else proven,  # type: ignore[arg-type]
        manufacturer_cas=[world.maker] if cas is None else cas,
        endorsements=tokens.endorsements() if endorsements is None else endorsements,
        policy=policy or Policy(),
        history=history,
        now=now or datetime.now(UTC),
    )
    assert result.code in CODES
    if result.status == "contraindicated":
        assert result.certified_key is None and result.reasons
    return result


def refused(result: AttestationResult, code: str) -> str:
    assert (result.status, result.code) == ("contraindicated", code), result.reasons
    assert 96 in result.trustworthiness.values()
    return result.reasons[-1]


# --- what passes ---------------------------------------------------------------------------


def test_dice_evidence_built_with_cbor2_is_affirmed(world: World) -> None:
    result = judge(world, tokens.token(world.dice))
    assert (result.status, result.code, result.reasons) == ("affirming", "ok", ())
    assert result.certified_key == world.dice.signing_point  # the Alias key
    assert set(result.trustworthiness.values()) == {2}
    assert result.claims is not None and result.claims.image_digest == tokens.IMAGE


def test_dice_evidence_made_by_pycose_is_affirmed(world: World) -> None:
    result = judge(world, tokens.pycose_token(world.dice))
    assert (result.status, result.code) == ("affirming", "ok"), result.reasons


def test_the_ear_has_the_draft_member_names(world: World) -> None:
    now = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)
    result = judge(world, tokens.token(world.dice))
    ear = result.ear(now)
    assert ear["eat_profile"] == "tag:github.com,2023:veraison/ear"
    assert ear["iat"] == int(now.timestamp())
    verifier = ear["ear.verifier-id"]
    assert isinstance(verifier, dict) and set(verifier) == {"developer", "build"}
    appraisal = ear["submods"]["sevenfold"]  # type: ignore[index]
    assert appraisal["ear.status"] == "affirming"
    assert appraisal["ear.trustworthiness-vector"] == {
        "instance-identity": 2,
        "configuration": 2,
        "executables": 2,
        "hardware": 2,
    }
    assert appraisal["ear.appraisal-policy-id"] == Policy().policy_id


def test_unendorsed_config_is_a_warning_unless_the_policy_requires_it(world: World) -> None:
    result = judge(world, tokens.token(world.dice), endorsements=tokens.endorsements(config=None))
    assert (result.status, result.code) == ("warning", "ok")
    assert result.trustworthiness["configuration"] == 32
    assert result.certified_key == world.dice.signing_point
    strict = Policy(require_endorsed_config=True)
    refused(
        judge(
            world,
            tokens.token(world.dice),
            endorsements=tokens.endorsements(config=None),
            policy=strict,
        ),
        "unendorsed-config",
    )


def test_software_root_is_refused_by_default(world: World) -> None:
    refused(judge(world, tokens.token(world.software), device=world.software), "rot-not-allowed")


def test_software_root_allowed_by_policy_is_a_warning_never_affirming(world: World) -> None:
    policy = Policy(allowed_roots=frozenset({"dice", "software"}))
    result = judge(world, tokens.token(world.software), device=world.software, policy=policy)
    assert (result.status, result.code) == ("warning", "ok"), result.reasons
    assert result.trustworthiness["hardware"] == 32
    assert result.certified_key == world.software.deviceid_key


def test_the_same_boot_attesting_again_is_affirmed(world: World) -> None:
    history = History(
        bootcount=tokens.BOOTCOUNT, bootseed=tokens.BOOTSEED, tpm_reset_count=None, tpm_clock=None
    )
    assert judge(world, tokens.token(world.dice), history=history).status == "affirming"


# --- envelope and decoding -----------------------------------------------------------------


def _signed(world: World, protected: bytes, unprotected: dict[int, object] | None = None) -> bytes:
    payload = cbor2.dumps(tokens.claims(world.dice))
    return tokens.sign1(
        world.dice.signer,
        payload,
        {33: world.dice.chain} if unprotected is None else unprotected,
        protected=protected,
    )


def test_malformed_cbor(world: World) -> None:
    assert "evidence" in refused(judge(world, tokens.token(world.dice)[:-5]), "bad-cbor")


def test_wrong_alg(world: World) -> None:
    assert "ES256" in refused(judge(world, _signed(world, cbor2.dumps({1: -35}))), "bad-alg")


def test_alg_in_unprotected(world: World) -> None:
    token = _signed(world, cbor2.dumps({1: -7}), {1: -7, 33: world.dice.chain})
    assert "unprotected" in refused(judge(world, token), "bad-alg")


def test_alg_none(world: World) -> None:
    refused(judge(world, _signed(world, cbor2.dumps({1: "none"}))), "bad-alg")


def test_missing_alg(world: World) -> None:
    assert "no alg" in refused(judge(world, _signed(world, b"")), "bad-alg")
    refused(judge(world, _signed(world, cbor2.dumps({4: b"kid"}))), "bad-alg")


def test_crit_is_refused(world: World) -> None:
    refused(judge(world, _signed(world, cbor2.dumps({1: -7, 2: [4]}))), "bad-header")


def test_signature_over_a_different_protected_header(world: World) -> None:
    payload = cbor2.dumps(tokens.claims(world.dice))
    token = tokens.sign1(
        world.dice.signer,
        payload,
        {33: world.dice.chain},
        signed_protected=cbor2.dumps({1: -7, 4: b"k"}),
    )
    refused(judge(world, token), "bad-signature")


def test_detached_payload(world: World) -> None:
    token = tokens.sign1(world.dice.signer, None, {33: world.dice.chain})
    assert "detached" in refused(judge(world, token), "bad-cose")


def test_untagged_token(world: World) -> None:
    token = cbor2.dumps(cbor2.loads(tokens.token(world.dice)).value)
    refused(judge(world, token), "bad-cose")


def test_token_over_the_size_limit(world: World) -> None:
    token = tokens.token(world.dice, swname="x" * 3000)
    assert len(token) > 3072
    assert "3072" in refused(judge(world, token), "too-large")


def test_unknown_claim(world: World) -> None:
    token = tokens.token(world.dice, **{"-70099": 1})
    assert "-70099" in refused(judge(world, token), "bad-claim")


# --- identity, chain and signature ---------------------------------------------------------


def test_not_provisioned(world: World) -> None:
    refused(judge(world, tokens.token(world.dice), proven=None), "not-provisioned")


def test_key_shared(world: World) -> None:
    proven = world.dice.proven(other_ids_with_key=("board-z-9",))
    assert "board-z-9" in refused(
        judge(world, tokens.token(world.dice), proven=proven), "key-shared"
    )


def test_kind_mismatch(world: World) -> None:
    token = tokens.token(world.dice, rot="tpm")
    assert "tpm" in refused(judge(world, token), "kind-mismatch")


def test_chain_to_an_unknown_ca(world: World) -> None:
    device = world.foreign_dice
    refused(judge(world, tokens.token(device), device=device), "unknown-ca")


def test_chain_to_an_unknown_ca_even_when_it_is_named_like_a_trusted_one(world: World) -> None:
    refused(judge(world, tokens.token(world.dice), cas=[world.stranger]), "unknown-ca")


def test_chain_not_ending_at_the_registered_deviceid(world: World) -> None:
    """A genuine device of the same maker presents its own chain for another's registration."""
    token = tokens.token(world.other_dice)
    refused(judge(world, token, device=world.dice), "not-registered-deviceid")


def test_deviceid_certificate_naming_another_device(world: World) -> None:
    proven = dataclasses.replace(world.dice.proven(), device_id="board-a-9")
    refused(judge(world, tokens.token(world.dice), proven=proven), "name-mismatch")


def test_alias_not_signed_by_the_deviceid(world: World) -> None:
    """The other device's Alias certificate, presented with this device's DeviceID."""
    chain = [world.other_dice.chain[0], world.dice.chain[1]]
    forged = dataclasses.replace(world.other_dice, chain=chain)
    refused(judge(world, tokens.token(forged)), "alias-not-issued")


def test_chain_of_the_wrong_length(world: World) -> None:
    forged = dataclasses.replace(world.dice, chain=[world.dice.chain[1]])
    assert "[Alias, DeviceID]" in refused(judge(world, tokens.token(forged)), "bad-chain")


def test_alias_stating_other_firmware_than_the_claims(world: World) -> None:
    """Booted on old firmware, the device claims the endorsed image: its Alias says otherwise."""
    token = tokens.token(world.old_firmware)
    assert "FWID" in refused(judge(world, token, device=world.old_firmware), "tcb-mismatch")


def test_alias_stating_another_svn_than_the_claims(world: World) -> None:
    token = tokens.token(world.dice, svn=tokens.SVN + 1)
    assert "svn" in refused(judge(world, token), "tcb-mismatch")


def test_token_signed_by_another_key(world: World) -> None:
    forged = dataclasses.replace(world.dice, signer=world.other_dice.signer)
    refused(judge(world, tokens.token(forged)), "bad-signature")


def test_expired_deviceid_certificate(world: World) -> None:
    later = datetime.now(UTC) + timedelta(days=3000)
    result = judge(
        world, tokens.token(world.dice), now=later, challenge=tokens.challenge(issued_at=later)
    )
    refused(result, "expired-certificate")


# --- freshness -----------------------------------------------------------------------------


def test_missing_or_replayed_nonce(world: World) -> None:
    """The server found no outstanding challenge: none issued, or already consumed."""
    refused(judge(world, tokens.token(world.dice), challenge=None), "unknown-nonce")


def test_nonce_of_another_challenge(world: World) -> None:
    refused(
        judge(world, tokens.token(world.dice), challenge=tokens.challenge(nonce=bytes(32))),
        "unknown-nonce",
    )


def test_expired_nonce(world: World) -> None:
    old = tokens.challenge(issued_at=datetime.now(UTC) - timedelta(seconds=61))
    assert "60 s" in refused(
        judge(world, tokens.token(world.dice), challenge=old), "stale-evidence"
    )


# --- claims against what is known -----------------------------------------------------------


def test_ueid_mismatch(world: World) -> None:
    refused(judge(world, tokens.token(world.dice, ueid=b"\x01" + bytes(32))), "ueid-mismatch")


def test_hwmodel_mismatch(world: World) -> None:
    proven = world.dice.proven(hwmodel="another-board")
    refused(judge(world, tokens.token(world.dice), proven=proven), "hwmodel-mismatch")


def test_bad_profile(world: World) -> None:
    token = tokens.token(world.dice, profile="tag:example.com,2026:other")
    refused(judge(world, token), "bad-profile")


def test_debug_enabled(world: World) -> None:
    token = tokens.token(world.dice, dbgstat=0)
    refused(judge(world, token), "debug-enabled")
    allowed = judge(world, token, policy=Policy(allow_debug=True))
    assert (allowed.status, allowed.trustworthiness["configuration"]) == ("warning", 32)


def test_lower_svn_than_the_policy_allows(world: World) -> None:
    policy = Policy(min_security_version=tokens.SVN + 1)
    assert "below" in refused(judge(world, tokens.token(world.dice), policy=policy), "svn-too-low")


def test_unendorsed_image(world: World) -> None:
    endorsed = tokens.endorsements(image=hashlib.sha256(b"another image").digest())
    refused(judge(world, tokens.token(world.dice), endorsements=endorsed), "unendorsed-image")


def test_image_endorsed_for_another_hardware_model_only(world: World) -> None:
    endorsed = [dataclasses.replace(e, hwmodel="other-board") for e in tokens.endorsements()]
    refused(judge(world, tokens.token(world.dice), endorsements=endorsed), "unendorsed-image")


def test_version_mismatch(world: World) -> None:
    token = tokens.token(world.dice, swversion=["1.4.1", 16384])
    refused(judge(world, token), "version-mismatch")


def test_svn_mismatch(world: World) -> None:
    endorsed = tokens.endorsements(security_version=tokens.SVN - 1)
    refused(judge(world, tokens.token(world.dice), endorsements=endorsed), "svn-mismatch")


# --- history --------------------------------------------------------------------------------


def test_boot_regressed(world: World) -> None:
    history = History(
        bootcount=tokens.BOOTCOUNT + 1, bootseed=None, tpm_reset_count=None, tpm_clock=None
    )
    refused(judge(world, tokens.token(world.dice), history=history), "boot-regressed")


def test_clone_suspected(world: World) -> None:
    history = History(
        bootcount=tokens.BOOTCOUNT, bootseed=bytes(32), tpm_reset_count=None, tpm_clock=None
    )
    refused(judge(world, tokens.token(world.dice), history=history), "clone-suspected")


# --- hostile tokens, generated --------------------------------------------------------------


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.data())
def test_a_mutated_token_is_always_contraindicated(world: World, data: st.DataObject) -> None:
    good = tokens.token(world.dice)
    # Fractions, not indices: the token's length varies with its DER signatures.
    at = int(data.draw(st.floats(0, 1, exclude_max=True)) * len(good))
    byte = data.draw(st.integers(0, 255))
    cut = int(data.draw(st.floats(0, 1, exclude_max=True)) * len(good))
    for mutated in (good[:at] + bytes((byte,)) + good[at + 1 :], good[:cut]):
        if mutated == good:
            continue
        result = judge(world, mutated)
        assert result.status == "contraindicated", (at, byte, result)
        assert result.certified_key is None
