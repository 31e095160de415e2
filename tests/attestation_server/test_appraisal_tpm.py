"""TPM evidence on a real swtpm: the token by the TPM's DeviceID key, the quote by its AK."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from attestation_server.appraisal import AttestationResult, History, appraise
from attestation_server.attestation_policy import Policy
from device_runtime.rot.tpm import TpmRootOfTrust
from device_runtime.simulated_tpm import SimulatedTpm
from tests.attestation_server import evidence_tokens as tokens
from tests.attestation_server.evidence_tokens import Device
from tests.swtpm_fixtures import swtpm

__all__ = ["swtpm"]

DEVICE_ID = "board-t-1"


@dataclass
class Tpm:
    rot: TpmRootOfTrust
    device: Device
    maker_certificate: object


@pytest.fixture
def tpm(swtpm: SimulatedTpm, tmp_path: Path) -> Iterator[Tpm]:
    """A TPM device whose registers 0 and 1 hold the image and the configuration, as at boot."""
    maker = tokens.manufacturer(tmp_path / "maker")
    rot = TpmRootOfTrust.open(tcti=swtpm.tcti)
    try:
        rot.extend(0, tokens.IMAGE)
        rot.extend(1, tokens.CONFIG)
        deviceid = tokens.der_certificate(
            maker.sign_csr(tokens.pem_csr(rot.csr(DEVICE_ID)), required_common_name=DEVICE_ID)
        )
        key = rot.identity_key()
        device = Device(
            device_id=DEVICE_ID,
            rot_kind="tpm",
            chain=[deviceid],
            deviceid_key=key.public_key(),
            signer=key.sign,
            signing_scalar=None,
            signing_point=key.public_key(),
            quote_key=rot.quote_public(),
        )
        yield Tpm(rot=rot, device=device, maker_certificate=maker.certificate)
    finally:
        rot.close()


def _judge(
    tpm: Tpm,
    quote: tuple[bytes, bytes] | None,
    history: History = tokens.FIRST_ATTESTATION,
) -> AttestationResult:
    return appraise(
        token=tokens.token(tpm.device),
        quote=None if quote is None else quote[0],
        quote_signature=None if quote is None else quote[1],
        challenge=tokens.challenge(),
        device=tpm.device.proven(),
        manufacturer_cas=[tpm.maker_certificate],  # type: ignore[list-item]
        endorsements=tokens.endorsements(),
        policy=Policy(),
        history=history,
        now=datetime.now(UTC),
    )


def _refused(result: AttestationResult, code: str) -> str:
    assert (result.status, result.code, result.certified_key) == ("contraindicated", code, None)
    return result.reasons[-1]


def test_tpm_evidence_with_its_quote_is_affirmed(tpm: Tpm) -> None:
    result = _judge(tpm, tpm.rot.quote(tokens.NONCE, (0, 1)))
    assert (result.status, result.code) == ("affirming", "ok"), result.reasons
    assert result.certified_key == tpm.device.deviceid_key
    assert result.tpm_clock is not None and result.tpm_clock[1] > 0


def test_quote_missing(tpm: Tpm) -> None:
    _refused(_judge(tpm, None), "quote-missing")


def test_quote_over_other_registers(tpm: Tpm) -> None:
    reason = _refused(_judge(tpm, tpm.rot.quote(tokens.NONCE, (0, 2))), "bad-quote")
    assert "registers [0, 2], not [0, 1]" in reason


def test_quote_over_registers_holding_other_values(tpm: Tpm) -> None:
    tpm.rot.extend(1, tokens.IMAGE)
    reason = _refused(_judge(tpm, tpm.rot.quote(tokens.NONCE, (0, 1))), "bad-quote")
    assert "digest" in reason


def test_quote_with_another_nonce(tpm: Tpm) -> None:
    reason = _refused(_judge(tpm, tpm.rot.quote(bytes(32), (0, 1))), "bad-quote")
    assert "nonce" in reason


def test_tpm_counters_regressed(tpm: Tpm) -> None:
    quote = tpm.rot.quote(tokens.NONCE, (0, 1))
    reset_count, clock = _judge(tpm, quote).tpm_clock or (0, 0)
    base = History(bootcount=None, bootseed=None, tpm_reset_count=None, tpm_clock=None)
    reset = dataclasses.replace(base, tpm_reset_count=reset_count + 1)
    _refused(_judge(tpm, quote, reset), "tpm-reset-regressed")
    back = dataclasses.replace(base, tpm_reset_count=reset_count, tpm_clock=clock + 10_000)
    _refused(_judge(tpm, quote, back), "tpm-clock-regressed")
    later = dataclasses.replace(base, tpm_reset_count=reset_count, tpm_clock=clock)
    assert _judge(tpm, quote, later).status == "affirming"
