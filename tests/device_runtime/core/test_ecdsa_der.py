"""The DER signature reader accepts exactly the encodings DER allows (the old re-encoding rule)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device_runtime.core import der, ecdsa_der
from device_runtime.core.errors import CryptoError


def _der_only(signature: bytes) -> bytes | None:
    """The raw pair if re-encoding it gives *signature* back, the rule the reader replaces."""
    try:
        raw = ecdsa_der.raw_signature(signature)
    except CryptoError:
        return None
    assert der.ecdsa_signature(raw) == signature
    return raw


@settings(max_examples=400)
@given(st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32))
def test_every_pair_round_trips(r: bytes, s: bytes) -> None:
    if int.from_bytes(r, "big") and int.from_bytes(s, "big"):
        assert _der_only(der.ecdsa_signature(r + s)) == r + s


@settings(max_examples=600)
@given(st.binary(min_size=32, max_size=32), st.integers(0, 71), st.integers(0, 255))
def test_a_changed_byte_is_refused_or_still_der(r: bytes, index: int, value: int) -> None:
    signature = bytearray(der.ecdsa_signature(r + bytes(31) + b"\x01"))
    signature[index % len(signature)] = value
    _der_only(bytes(signature))


@pytest.mark.parametrize(
    "signature",
    [
        b"",
        b"\x30\x06\x02\x01\x01\x02\x01\x01\x00",  # trailing byte
        b"\x30\x07\x02\x02\x00\x01\x02\x01\x01",  # r not minimal
        b"\x30\x06\x02\x01\x81\x02\x01\x01",  # r negative
        b"\x31\x06\x02\x01\x01\x02\x01\x01",  # not a SEQUENCE
        b"\x30\x81\x06\x02\x01\x01\x02\x01\x01",  # long-form length
    ],
)
def test_non_der_is_refused(signature: bytes) -> None:
    with pytest.raises(CryptoError):
        ecdsa_der.raw_signature(signature)
