"""Hostile traffic: mutated frames from the real captures never break the sensor.

Frames are truncated, bit-flipped, overwritten and reordered; whatever comes
out, observing them raises nothing, no dissector fails (a failure would show
as ``dissector_errors``), and everything that could not be decoded is
reported as a violation with a reason.
"""

from __future__ import annotations

import functools

from hypothesis import given, settings
from hypothesis import strategies as st

from passive_monitor.capture import read_capture
from passive_monitor.dissectors.dnp3 import Dnp3Tcp, Dnp3Udp
from passive_monitor.dissectors.modbus import ModbusTcp
from passive_monitor.sensor import Sensor
from tests.passive_monitor.shared_captures import capture, capture_names
from tests.passive_monitor.test_dnp3 import link_frame

Frames = list[tuple[float, int, bytes]]


@functools.cache
def frames_of(kind: str, name: str) -> Frames:
    return list(read_capture(capture(kind, name)))


SOURCES = [("modbus", name) for name in capture_names("modbus") if name != "ModbusTCP.pcap"] + [
    ("dnp3", name) for name in capture_names("dnp3")
]
# Headers up to the TCP payload of an untagged Ethernet/IPv4/TCP frame; most
# mutations aim past them so that they reach the dissectors.
HEADERS = 54


@st.composite
def mutated(draw: st.DrawFn) -> Frames:
    frames = frames_of(*draw(st.sampled_from(SOURCES)))
    start = draw(st.integers(0, max(len(frames) - 1, 0)))
    chosen = frames[start : start + draw(st.integers(1, 40))]
    out: Frames = []
    for ts, linktype, frame in chosen:
        data = bytearray(frame)
        for _ in range(draw(st.integers(0, 4))):
            if not data:
                break
            where = draw(st.sampled_from(["payload", "anywhere"]))
            low = HEADERS if where == "payload" and len(data) > HEADERS else 0
            at = draw(st.integers(low, len(data) - 1))
            action = draw(st.sampled_from(["flip", "set", "truncate", "insert"]))
            if action == "flip":
                data[at] ^= 1 << draw(st.integers(0, 7))
            elif action == "set":
                data[at] = draw(st.integers(0, 255))
            elif action == "truncate":
                del data[at:]
            else:
                data[at:at] = draw(st.binary(min_size=1, max_size=16))
        out.append((ts, linktype, bytes(data)))
    if draw(st.booleans()):
        out = draw(st.permutations(out))
    return out


@settings(max_examples=300, deadline=None)
@given(frames=mutated())
def test_mutated_captures_never_raise(frames: Frames) -> None:
    sensor = Sensor(max_flows=8, dissectors=[ModbusTcp, Dnp3Tcp, Dnp3Udp])
    for observation in sensor.observe_packets(frames):
        if observation.kind == "violation":
            assert observation.reason and observation.message is None
        elif observation.kind == "pdu":
            assert observation.message is not None
            assert observation.message.protocol in {"modbus", "dnp3"}
    assert sensor.stats.dissector_errors == 0
    assert sensor.stats.packets == len(frames)


@settings(max_examples=300, deadline=None)
@given(chunks=st.lists(st.binary(max_size=300), max_size=12), to_server=st.booleans())
def test_stream_dissectors_take_any_bytes(chunks: list[bytes], to_server: bool) -> None:
    for dissector in (ModbusTcp(), Dnp3Tcp()):
        for number, chunk in enumerate(chunks):
            if number % 5 == 4:
                dissector.gap(to_server=to_server)
            for message in dissector.feed(chunk, to_server=to_server, frame=number, ts=0.0):
                assert message.fields or message.violations


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=600))
def test_datagram_dissector_takes_any_bytes(data: bytes) -> None:
    for message in Dnp3Udp().parse(data, to_server=True, frame=1, ts=0.0):
        assert message.fields or message.violations


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_valid_dnp3_headers_with_random_bodies(data: st.DataObject) -> None:
    """Random application fragments behind correct CRCs reach the object parser."""
    body = data.draw(st.binary(min_size=1, max_size=249))
    frame = link_frame(data.draw(st.integers(0, 255)), 1, 2, bytes([0xC0]) + body)
    for message in Dnp3Tcp().feed(frame, to_server=True, frame=1, ts=0.0):
        assert message.fields
