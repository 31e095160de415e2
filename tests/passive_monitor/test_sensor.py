"""The sensor end to end: files and packet iterables in, observations out."""

from __future__ import annotations

import dataclasses
import struct
from pathlib import Path
from typing import ClassVar

import pytest

from passive_monitor.capture import CaptureError
from passive_monitor.decode import LINKTYPE_ETHERNET, LINKTYPE_IPV4
from passive_monitor.dissectors.base import Message, StreamDissector
from passive_monitor.dissectors.dnp3 import Dnp3Udp
from passive_monitor.dissectors.modbus import ModbusTcp
from passive_monitor.sensor import Endpoint, Observation, Sensor
from tests.passive_monitor.shared_captures import capture
from tests.passive_monitor.test_dnp3 import link_frame
from tests.passive_monitor.tshark_reference import tshark_fields

SYN, ACK, PSH, FIN = 0x02, 0x10, 0x08, 0x01
CLIENT, SERVER = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])


def ip_tcp(
    src: bytes, dst: bytes, sport: int, dport: int, seq: int, flags: int, payload: bytes = b""
) -> bytes:
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, 1, 0x50, flags, 1024, 0, 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0, 64, 6, 0, src, dst)
    return ip + tcp


def ip_udp(src: bytes, dst: bytes, sport: int, dport: int, payload: bytes) -> bytes:
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, src, dst) + udp


def run(frames: list[bytes], sensor: Sensor | None = None) -> list[Observation]:
    sensor = sensor or Sensor()
    return list(sensor.observe_packets((float(n), LINKTYPE_IPV4, f) for n, f in enumerate(frames)))


READ = bytes.fromhex("000100000006010300000002")


@pytest.mark.parametrize(
    ("kind", "name"),
    [("modbus", "modbus_test_data_part2.pcap"), ("dnp3", "dnp3_example.pcap"),
     ("bacnet", "bacnet_example.pcap"), ("s7comm", "tia_s300_downloadOb1.pcapng")],
)  # fmt: skip
def test_one_connection_per_tshark_conversation(kind: str, name: str) -> None:
    pcap = capture(kind, name)
    reference = tshark_fields(
        pcap, display_filter="tcp || udp", fields=["tcp.stream", "udp.stream"]
    )
    conversations = {
        (proto, values[f"{proto}.stream"][0])
        for values in reference.values()
        for proto in ("tcp", "udp")
        if values[f"{proto}.stream"]
    }
    sensor = Sensor()
    connections = [o for o in sensor.observe_file(pcap) if o.kind == "connection"]
    assert len(connections) == len(conversations)
    assert sensor.stats.flows_evicted == 0


def test_file_observations_name_client_server_and_macs() -> None:
    pcap = capture("modbus", "modbus_example.pcap")
    observations = list(Sensor().observe_file(pcap))
    first = observations[0]
    assert first.kind == "connection" and first.frame == 1
    assert first.server.port == 502 and first.client.port != 502
    assert first.client.mac is not None and first.server.mac is not None
    pdus = [o for o in observations if o.kind == "pdu"]
    assert pdus and all(o.message is not None for o in pdus)
    assert all(o.server.port == 502 for o in pdus)
    requests = [o for o in pdus if o.message is not None and o.message.is_request]
    assert len(requests) == len(pdus) // 2


def test_syn_decides_direction_even_on_unknown_ports() -> None:
    observations = run([ip_tcp(CLIENT, SERVER, 40000, 30000, 5, SYN)])
    (connection,) = observations
    assert connection.client == Endpoint(None, "10.0.0.1", 40000)
    assert connection.server == Endpoint(None, "10.0.0.2", 30000)


def test_syn_ack_seen_first_marks_its_sender_as_server() -> None:
    (connection,) = run([ip_tcp(SERVER, CLIENT, 30000, 40000, 5, SYN | ACK)])
    assert connection.server.port == 30000


def test_mid_stream_uses_the_well_known_port_then_the_lower_port() -> None:
    response = ip_tcp(SERVER, CLIENT, 502, 50000, 9, ACK | PSH, READ)
    observations = run([response])
    assert observations[0].server.port == 502
    assert observations[1].kind == "pdu"
    assert observations[1].message is not None and observations[1].message.is_request is False
    (other,) = run([ip_tcp(CLIENT, SERVER, 50000, 6000, 9, ACK)])
    assert other.server.port == 6000


def test_session_picked_up_mid_stream_resynchronises() -> None:
    tail = READ[5:]
    frames = [
        ip_tcp(CLIENT, SERVER, 50000, 502, 100, ACK | PSH, tail),
        ip_tcp(CLIENT, SERVER, 50000, 502, 100 + len(tail), ACK | PSH, READ),
    ]
    kinds = [(o.kind, o.frame, bool(o.message and o.message.fields)) for o in run(frames)]
    assert ("pdu", 2, True) in kinds
    assert ("pdu", 1, True) not in kinds


def test_handshake_then_reordered_segments_are_delivered_in_order() -> None:
    first, second = READ[:8], READ[8:]
    frames = [
        ip_tcp(CLIENT, SERVER, 50000, 502, 99, SYN),
        ip_tcp(CLIENT, SERVER, 50000, 502, 100 + len(first), ACK | PSH, second),
        ip_tcp(CLIENT, SERVER, 50000, 502, 100, ACK | PSH, first),
    ]
    pdus = [o for o in run(frames) if o.kind == "pdu"]
    assert len(pdus) == 1 and pdus[0].frame == 3
    assert pdus[0].message is not None and pdus[0].message.fields["modbus.word_cnt"] == 2


def test_retransmission_is_dissected_once() -> None:
    segment = ip_tcp(CLIENT, SERVER, 50000, 502, 100, ACK | PSH, READ)
    pdus = [o for o in run([segment, segment]) if o.kind == "pdu"]
    assert len(pdus) == 1


def test_new_syn_on_a_used_port_pair_starts_a_new_connection() -> None:
    frames = [
        ip_tcp(CLIENT, SERVER, 50000, 502, 100, SYN),
        ip_tcp(CLIENT, SERVER, 50000, 502, 101, FIN | ACK),
        ip_tcp(CLIENT, SERVER, 50000, 502, 9000, SYN),
    ]
    assert [o.frame for o in run(frames) if o.kind == "connection"] == [1, 3]


def test_undecodable_packet_is_a_violation_with_a_reason() -> None:
    sensor = Sensor()
    frame = b"\x45\x00\x00\x10" + b"\0" * 12
    (observation,) = run([frame], sensor)
    assert observation.kind == "violation" and observation.message is None
    assert "IPv4" in observation.reason
    assert sensor.stats.decode_errors == 1


def test_udp_datagrams_reach_datagram_dissectors() -> None:
    payload = link_frame(0xC4, 10, 1, bytes([0xC0, 0xC1, 1, 60, 2, 6]))
    observations = run(
        [ip_udp(CLIENT, SERVER, 40000, 20000, payload)], Sensor(dissectors=[Dnp3Udp])
    )
    assert [o.kind for o in observations] == ["connection", "pdu"]
    assert observations[1].transport == "udp"
    assert observations[1].message is not None
    assert observations[1].message.fields["dnp3.al.func"] == 1


class Exploding(StreamDissector):
    name: ClassVar[str] = "exploding"
    ports: ClassVar[frozenset[int]] = frozenset({7777})

    def feed(self, data: bytes, *, to_server: bool, frame: int, ts: float) -> list[Message]:
        raise RuntimeError("dissector defect")


def test_a_failing_dissector_becomes_a_violation_not_a_crash() -> None:
    sensor = Sensor(dissectors=[Exploding])
    frames = [ip_tcp(CLIENT, SERVER, 40000, 7777, 1, ACK | PSH, b"boom")] * 2
    violations = [o for o in run(frames, sensor) if o.kind == "violation"]
    assert violations and "exploding" in violations[0].reason
    assert sensor.stats.dissector_errors == 1


def test_frame_numbers_and_flows_continue_across_calls() -> None:
    sensor = Sensor(dissectors=[ModbusTcp])
    run([ip_tcp(CLIENT, SERVER, 50000, 502, 99, SYN)], sensor)
    second = run([ip_tcp(CLIENT, SERVER, 50000, 502, 100, ACK | PSH, READ)], sensor)
    assert [(o.kind, o.frame) for o in second] == [("pdu", 2)]


def test_ethernet_frames_carry_macs_and_stats_count_bytes() -> None:
    ip = ip_tcp(CLIENT, SERVER, 50000, 502, 99, SYN)
    frame = bytes.fromhex("0200000000020200000000010800") + ip
    sensor = Sensor()
    (connection,) = sensor.observe_packets([(0.0, LINKTYPE_ETHERNET, frame)])
    assert connection.client.mac == "02:00:00:00:00:01"
    assert connection.server.mac == "02:00:00:00:00:02"
    assert sensor.stats.bytes == len(frame) and sensor.stats.flows_active == 1


def test_observations_are_immutable() -> None:
    (connection,) = run([ip_tcp(CLIENT, SERVER, 40000, 30000, 5, SYN)])
    with pytest.raises(dataclasses.FrozenInstanceError):
        connection.kind = "pdu"  # type: ignore[misc]


def test_syn_from_the_side_guessed_as_server_restarts_the_flow() -> None:
    frames = [
        ip_tcp(SERVER, CLIENT, 502, 50000, 9, ACK | PSH, READ),
        ip_tcp(SERVER, CLIENT, 502, 50000, 1000, SYN),
    ]
    connections = [o for o in run(frames) if o.kind == "connection"]
    assert [(o.frame, o.server.port) for o in connections] == [(1, 502), (2, 50000)]


def test_a_damaged_file_stops_with_capture_error(tmp_path: Path) -> None:
    good = capture("modbus", "modbus_example.pcap").read_bytes()
    path = tmp_path / "cut.pcap"
    path.write_bytes(good[:-7])
    sensor = Sensor()
    observations: list[Observation] = []
    with pytest.raises(CaptureError):
        observations.extend(sensor.observe_file(path))
    assert sensor.stats.packets == 99
