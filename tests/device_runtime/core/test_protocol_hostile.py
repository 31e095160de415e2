"""Hostile bytes against the protocol decoder: only ProtocolError, never a crash."""

from __future__ import annotations

import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st

from device_runtime.core import cbor, protocol
from device_runtime.core.errors import ProtocolError

VALID = protocol.encode("heartbeat", b"12345678", {"seq": 9, "uptime": 100, "boot_count": 2})


@settings(max_examples=300)
@given(st.binary(max_size=512))
def test_random_bytes(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        protocol.decode(data)


@settings(max_examples=300)
@given(st.data())
def test_mutated_valid_message(data: st.DataObject) -> None:
    message = bytearray(VALID)
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(message) - 1))
        message[index] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(message)))
    try:
        envelope = protocol.decode(bytes(message[:cut]))
    except ProtocolError:
        return
    # Whatever one side accepts, the other can send back unchanged: the
    # checks on decode and on encode are the same schema.
    again = protocol.decode(protocol.encode(envelope.kind, envelope.correlation, envelope.body))
    assert again.kind == envelope.kind
    assert again.correlation == envelope.correlation
    assert again.body == envelope.body
    assert again.kind in protocol.SCHEMAS
    assert len(again.correlation) == protocol.CORRELATION_BYTES


values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**64), 2**64 - 1)
    | st.text(max_size=20)
    | st.binary(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300)
@given(st.dictionaries(st.sampled_from(["v", "t", "id", "b", "x"]), values, max_size=5))
def test_structurally_wrong_envelopes(message: dict[str, object]) -> None:
    with contextlib.suppress(ProtocolError):
        protocol.decode(cbor.dumps(message))


def test_every_accepted_single_byte_change_round_trips() -> None:
    """Exhaustively: each byte of a valid message set to each value, then decoded."""
    accepted = 0
    for index in range(len(VALID)):
        for value in range(256):
            message = bytearray(VALID)
            message[index] = value
            try:
                envelope = protocol.decode(bytes(message))
            except ProtocolError:
                continue
            accepted += 1
            encoded = protocol.encode(envelope.kind, envelope.correlation, envelope.body)
            again = protocol.decode(encoded)
            assert (again.kind, again.correlation, again.body) == (
                envelope.kind,
                envelope.correlation,
                envelope.body,
            )
            # Changing a value in place keeps the keys in order, so the
            # canonical encoding is the changed message itself.
            assert encoded == bytes(message)
    # The correlation id's eight bytes and the three counters take any value.
    assert accepted > 8 * 255
