"""The evidence decoder: the profile's shape exactly, limits before decoding, one error class."""

from __future__ import annotations

from pathlib import Path

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attestation_server import evidence
from attestation_server.evidence import EvidenceError, decode, peek_nonce
from tests.attestation_server import evidence_tokens as tokens
from tests.attestation_server.evidence_tokens import Device


@pytest.fixture(scope="module")
def device(tmp_path_factory: pytest.TempPathFactory) -> Device:
    root: Path = tmp_path_factory.mktemp("evidence")
    return tokens.dice_device(tokens.manufacturer(root / "maker"), root / "dice")


def _error(token: bytes) -> EvidenceError:
    with pytest.raises(EvidenceError) as caught:
        decode(token)
    assert caught.value.code in evidence.CODES and caught.value.reason
    return caught.value


def test_a_valid_token_decodes_to_its_claims(device: Device) -> None:
    decoded = decode(tokens.token(device))
    claims = decoded.claims
    assert (claims.nonce, claims.image_digest, claims.config_digest) == (
        tokens.NONCE,
        tokens.IMAGE,
        tokens.CONFIG,
    )
    assert (claims.swversion, claims.security_version, claims.rot) == ("1.4.0", 3, "dice")
    assert len(decoded.chain) == 2 and len(decoded.signature) == 64
    assert peek_nonce(tokens.token(device)) == tokens.NONCE


def test_peek_nonce_checks_structure_only(device: Device) -> None:
    forged = tokens.sign1(lambda _: bytes(64), cbor2.dumps(tokens.claims(device)), {33: []})
    with pytest.raises(EvidenceError):
        peek_nonce(forged)  # an empty x5chain is a structure fault
    unsigned = tokens.sign1(lambda _: bytes(64), cbor2.dumps(tokens.claims(device)), {33: [b"x"]})
    assert peek_nonce(unsigned) == tokens.NONCE


@pytest.mark.parametrize(
    ("claim", "value"),
    [
        ("nonce", bytes(31)),
        ("ueid", bytes(32)),
        ("oemid", "abc"),
        ("hwmodel", None),
        ("uptime", -1),
        ("dbgstat", 5),
        ("bootcount", 1 << 32),
        ("bootseed", bytes(33)),
        ("swname", "x" * 65),
        ("swversion", ["1.0", 1]),
        ("swversion", ["x" * 33, 16384]),
        ("measurements", [tokens.measurement("image", tokens.IMAGE)]),
        ("measurements", [tokens.measurement("config", tokens.CONFIG)] * 2),
        ("measurements", [[61, b""], tokens.measurement("config", tokens.CONFIG)]),
        (
            "measurements",
            [tokens.measurement("image", bytes(31)), tokens.measurement("config", tokens.CONFIG)],
        ),
        ("svn", True),
        ("rot", "enclave"),
    ],
)
def test_every_claim_has_its_type_and_size(device: Device, claim: str, value: object) -> None:
    error = _error(tokens.token(device, **{claim: value}))
    assert error.code == "bad-claim"


def test_limits_come_before_decoding(device: Device) -> None:
    deep = cbor2.dumps(cbor2.CBORTag(18, [[[[[[[0]]]]]]]))
    assert _error(deep).code == "too-large"
    many = cbor2.dumps(cbor2.CBORTag(18, list(range(40))))
    assert _error(many).code == "too-large"
    assert _error(b"\x00" * 3073).code == "too-large"


def test_too_many_or_too_large_certificates(device: Device) -> None:
    payload = cbor2.dumps(tokens.claims(device))
    four = tokens.sign1(device.signer, payload, {33: device.chain * 2})
    assert _error(four).code == "bad-x5chain"
    big = tokens.sign1(device.signer, payload, {33: [bytes(1201)]})
    assert "1200" in _error(big).reason
    bare = tokens.sign1(device.signer, payload, {33: device.chain[0]})
    assert _error(bare).code == "bad-x5chain"
    garbage = tokens.sign1(device.signer, payload, {33: [b"\x30\x00"]})
    assert "DER" in _error(garbage).reason


def test_short_signature(device: Device) -> None:
    token = tokens.sign1(
        lambda _: bytes(63), cbor2.dumps(tokens.claims(device)), {33: device.chain}
    )
    assert _error(token).code == "bad-cose"


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=4000))
def test_random_bytes_raise_only_evidence_error(data: bytes) -> None:
    try:
        decode(data)
    except EvidenceError as exc:
        assert exc.code in evidence.CODES


@settings(max_examples=500, deadline=None)
@given(st.data())
def test_a_mutated_token_raises_only_evidence_error(device: Device, data: st.DataObject) -> None:
    good = tokens.token(device)
    # Fractions, not indices: a token's length varies with its DER signatures, and hypothesis
    # needs the same draws from one run to the next.
    at = int(data.draw(st.floats(0, 1, exclude_max=True)) * len(good))
    byte = data.draw(st.integers(0, 255))
    cut = int(data.draw(st.floats(0, 1)) * len(good))
    inserted = data.draw(st.binary(max_size=8))
    for mutated in (
        good[:at] + bytes((byte,)) + good[at + 1 :],
        good[:cut],
        good[:at] + inserted + good[at:],
    ):
        try:
            decode(mutated)
        except EvidenceError as exc:
            assert exc.code in evidence.CODES


def test_a_certificate_with_a_duplicated_extension_is_a_chain_fault(device: Device) -> None:
    """cryptography raises DuplicateExtension (no ValueError) on such a certificate: found by
    hypothesis over mutated tokens, refused as a decoding fault like every other."""
    alias, deviceid = device.chain  # the DeviceID certificate has both extensions below
    key_usage, subject_key_id = b"\x06\x03\x55\x1d\x0f", b"\x06\x03\x55\x1d\x0e"
    twice = deviceid.replace(key_usage, subject_key_id, 1)
    assert twice != deviceid
    token = tokens.sign1(
        lambda _: bytes(64), cbor2.dumps(tokens.claims(device)), {33: [alias, twice]}
    )
    with pytest.raises(EvidenceError) as refused:
        decode(token)
    assert refused.value.code == "bad-x5chain"
    assert "Duplicate" in refused.value.reason, refused.value.reason
