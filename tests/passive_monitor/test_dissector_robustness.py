"""Hostile input against the BACnet, S7comm, EtherNet/IP and IEC 104 dissectors.

A passive sensor sits on a SPAN port where anything can appear: fuzzers,
half-captured sessions, other protocols on the well-known ports. Whatever the
bytes, a dissector must return messages (never raise), report what it could not
parse as violations, and keep its per-connection memory bounded.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from passive_monitor.dissectors.bacnet import BacnetDissector
from passive_monitor.dissectors.base import DatagramDissector, Message, StreamDissector
from passive_monitor.dissectors.enip import CipIoDissector, EnipDissector, EnipUdpDissector
from passive_monitor.dissectors.iec104 import Iec104Dissector
from passive_monitor.dissectors.s7comm import S7commDissector
from tests.passive_monitor import test_bacnet, test_enip, test_iec104, test_s7comm

STREAMS: dict[type[StreamDissector], list[bytes]] = {
    Iec104Dissector: [
        test_iec104.STARTDT_ACT,
        test_iec104.FLOATS_TWO_OBJECTS,
        test_iec104.FOUR_APDUS,
        test_iec104.NEGATIVE_CONFIRMATION,
    ],
    S7commDissector: [
        test_s7comm.COTP_CR,
        test_s7comm.SETUP,
        test_s7comm.READ_DB1,
        test_s7comm.PLC_STOP,
        test_s7comm.INSERT_BLOCK,
        test_s7comm.REJECTED_UPLOAD,
    ],
    EnipDissector: [
        test_enip.LIST_IDENTITY_REPLY,
        test_enip.STOP_PLC,
        test_enip.REGISTER_SESSION,
    ],
}
DATAGRAMS: dict[type[DatagramDissector], list[bytes]] = {
    BacnetDissector: [
        test_bacnet.READ_PROPERTY,
        test_bacnet.READ_PROPERTY_ACK,
        test_bacnet.I_AM,
        test_bacnet.ROUTED_REQUEST,
        test_bacnet.ERROR,
        test_bacnet.REJECT,
        test_bacnet.ABORT,
        test_bacnet.SEGMENT_ACK,
        test_bacnet.WHO_IS_RANGE,
        test_bacnet.FORWARDED,
    ],
    EnipUdpDissector: [test_enip.LIST_IDENTITY_REPLY],
    CipIoDissector: [test_enip.IO_FRAME],
}
# Datagram protocols whose header states the datagram length, so any cut shows.
LENGTH_CHECKED = (BacnetDissector, EnipUdpDissector)
FIELD_TYPES = (int, str, bytes, bool, float, tuple)
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    """A captured PDU with some bytes replaced, inserted or cut away."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, 4))):
        position = draw(st.integers(0, len(data)))
        value = draw(st.integers(0, 255))
        action = draw(st.sampled_from(("replace", "insert", "delete")))
        if action == "insert" or position == len(data):
            data.insert(position, value)
        elif action == "replace":
            data[position] = value
        else:
            del data[position]
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


def _well_formed(messages: list[Message], protocol_names: set[str]) -> None:
    for message in messages:
        assert isinstance(message, Message)
        assert message.protocol in protocol_names
        assert all(isinstance(value, FIELD_TYPES) for value in message.fields.values())
        assert all(isinstance(violation, str) for violation in message.violations)


def _held_bytes(dissector: object) -> int:
    """Bytes a dissector keeps between calls, wherever it keeps them."""

    def size(value: object) -> int:
        if isinstance(value, bytes | bytearray):
            return len(value)
        if isinstance(value, dict):
            return sum(size(item) for item in value.values())
        return 0

    return sum(size(value) for value in vars(dissector).values())


def _feed(cls: type[StreamDissector], chunks: list[bytes], gaps: list[bool]) -> StreamDissector:
    dissector = cls()
    for index, (chunk, gap) in enumerate(zip(chunks, gaps, strict=False)):
        to_server = index % 3 != 2
        if gap:
            dissector.gap(to_server=to_server)
        messages = dissector.feed(chunk, to_server=to_server, frame=index + 1, ts=float(index))
        _well_formed(messages, {cls.name})
    return dissector


@FAST
@given(
    cls=st.sampled_from(sorted(STREAMS, key=lambda c: c.name)),
    chunks=st.lists(st.binary(max_size=300), max_size=12),
    gaps=st.lists(st.booleans(), min_size=12, max_size=12),
)
def test_streams_survive_random_bytes(
    cls: type[StreamDissector], chunks: list[bytes], gaps: list[bool]
) -> None:
    _feed(cls, chunks, gaps)


@FAST
@given(data=st.data(), cls=st.sampled_from(sorted(STREAMS, key=lambda c: c.name)))
def test_streams_survive_mutated_pdus(data: st.DataObject, cls: type[StreamDissector]) -> None:
    pdus = data.draw(st.lists(mutated(STREAMS[cls]), min_size=1, max_size=6))
    stream = b"".join(pdus)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=5)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    dissector = cls()
    for chunk in chunks:
        _well_formed(dissector.feed(chunk, to_server=True, frame=1, ts=0.0), {cls.name})


@FAST
@given(data=st.data(), cls=st.sampled_from(sorted(DATAGRAMS, key=lambda c: c.name)))
def test_datagrams_survive_mutated_payloads(
    data: st.DataObject, cls: type[DatagramDissector]
) -> None:
    payload = data.draw(mutated(DATAGRAMS[cls]))
    messages = cls().parse(payload, to_server=True, frame=1, ts=0.0)
    _well_formed(messages, {cls.name})
    assert len(messages) == 1


@FAST
@given(
    cls=st.sampled_from(sorted(DATAGRAMS, key=lambda c: c.name)),
    payload=st.binary(max_size=600),
)
def test_datagrams_survive_random_bytes(cls: type[DatagramDissector], payload: bytes) -> None:
    _well_formed(cls().parse(payload, to_server=False, frame=1, ts=0.0), {cls.name})


@FAST
@given(data=st.data(), cls=st.sampled_from(LENGTH_CHECKED))
def test_cut_datagrams_are_violations(data: st.DataObject, cls: type[DatagramDissector]) -> None:
    seed = data.draw(st.sampled_from(DATAGRAMS[cls]))
    cut = seed[: data.draw(st.integers(0, len(seed) - 1))]
    (message,) = cls().parse(cut, to_server=True, frame=1, ts=0.0)
    assert message.violations


@FAST
@given(data=st.data(), cls=st.sampled_from(sorted(STREAMS, key=lambda c: c.name)))
def test_stream_recovers_after_a_gap(data: st.DataObject, cls: type[StreamDissector]) -> None:
    """Mid-stream pickup: after a gap, junk then a valid PDU still yields that PDU.

    The junk holds no byte that can start a header of the protocol; junk that
    does may legitimately be taken for a PDU announcing more bytes.
    """
    sync = {Iec104Dissector: 0x68, S7commDissector: 0x03, EnipDissector: 0x00}[cls]
    junk = bytes(data.draw(st.lists(st.integers(0, 255).filter(lambda b: b != sync), max_size=64)))
    pdu = data.draw(st.sampled_from(STREAMS[cls]))
    dissector = cls()
    dissector.gap(to_server=True)
    messages = dissector.feed(junk + pdu, to_server=True, frame=1, ts=0.0)
    messages += dissector.feed(pdu, to_server=True, frame=2, ts=0.0)
    assert any(m.frame == 2 and m.fields and not m.violations for m in messages)


def test_buffers_stay_bounded_under_endless_input() -> None:
    """A peer streaming megabytes of junk, or one huge claimed PDU, cannot grow memory."""
    junk = bytes(range(256)) * 64
    claims: list[tuple[StreamDissector, bytes]] = [
        (Iec104Dissector(), b"\x68\xff"),
        (S7commDissector(), b"\x03\x00\xff\xff\x02\xf0\x00"),
        (EnipDissector(), bytes.fromhex("6f00ffff") + bytes(20)),
    ]
    for dissector, claim in claims:
        for frame in range(64):
            dissector.feed(junk, to_server=True, frame=frame, ts=0.0)
            dissector.feed(claim + junk, to_server=False, frame=frame, ts=0.0)
        assert _held_bytes(dissector) <= 2 * (dissector.max_buffer + 64), dissector.name
