"""Link, network and transport decoding: tshark on real captures, edge cases by hand."""

from __future__ import annotations

import socket
import struct

import pytest

from passive_monitor.capture import read_capture
from passive_monitor.decode import (
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
    PROTO_TCP,
    PROTO_UDP,
    Packet,
    Skipped,
    decode,
)
from tests.passive_monitor.shared_captures import capture
from tests.passive_monitor.tshark_reference import tshark_fields

ADDRESS_FIELDS = [
    "eth.src",
    "ip.src",
    "ip.dst",
    "tcp.srcport",
    "tcp.dstport",
    "tcp.len",
    "udp.srcport",
    "udp.dstport",
]
REFERENCE_CAPTURES = [
    ("modbus", "fuzz-72.pcap"),
    ("modbus", "modbus_test.pcap"),
    ("dnp3", "dnp3_example.pcap"),
    ("s7comm", "s7comm_plus.pcap"),
    ("bacnet", "bacnet_example.pcap"),
]


@pytest.mark.parametrize(("kind", "name"), REFERENCE_CAPTURES)
def test_addresses_ports_and_payload_lengths_match_tshark(kind: str, name: str) -> None:
    pcap = capture(kind, name)
    reference = tshark_fields(pcap, display_filter="tcp || udp", fields=ADDRESS_FIELDS)
    decoded = {}
    for number, (_ts, linktype, frame) in enumerate(read_capture(pcap), start=1):
        packet = decode(linktype, frame)
        if isinstance(packet, Packet):
            decoded[number] = packet
    assert set(decoded) == set(reference)
    for number, packet in decoded.items():
        expected = reference[number]
        ports = "tcp" if packet.proto == PROTO_TCP else "udp"
        assert socket.inet_ntoa(packet.src_ip) == expected["ip.src"][0], number
        assert socket.inet_ntoa(packet.dst_ip) == expected["ip.dst"][0], number
        assert str(packet.sport) == expected[f"{ports}.srcport"][0], number
        assert str(packet.dport) == expected[f"{ports}.dstport"][0], number
        if ports == "tcp":
            assert str(len(packet.payload)) == expected["tcp.len"][0], number
        if expected["eth.src"]:
            assert packet.src_mac is not None
            assert packet.src_mac.hex(":") == expected["eth.src"][0], number


def ipv4(
    proto: int, body: bytes, *, frag: int = 0, ihl: int = 5, total: int | None = None
) -> bytes:
    size = ihl * 4 + len(body) if total is None else total
    header = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, size, 1, frag, 64, proto, 0,
                         bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))  # fmt: skip
    return header + b"\0" * (ihl * 4 - 20) + body


def tcp(sport: int, dport: int, payload: bytes, *, flags: int = 0x18, offset: int = 5) -> bytes:
    header = struct.pack("!HHIIBBHHH", sport, dport, 100, 200, offset << 4, flags, 1000, 0, 0)
    return header + b"\0" * (offset * 4 - 20) + payload


def udp(sport: int, dport: int, payload: bytes, *, length: int | None = None) -> bytes:
    size = 8 + len(payload) if length is None else length
    return struct.pack("!HHHH", sport, dport, size, 0) + payload


def ethernet(payload: bytes, ethertype: int = 0x0800, tags: int = 0) -> bytes:
    out = bytes.fromhex("020000000002") + bytes.fromhex("020000000001")
    for _ in range(tags):
        out += struct.pack("!HH", 0x8100, 7)
    return out + struct.pack("!H", ethertype) + payload


def test_ethernet_ipv4_tcp() -> None:
    packet = decode(LINKTYPE_ETHERNET, ethernet(ipv4(6, tcp(1234, 502, b"hello"))))
    assert isinstance(packet, Packet)
    assert (packet.sport, packet.dport, packet.payload) == (1234, 502, b"hello")
    assert packet.src_mac == bytes.fromhex("020000000001")
    assert (packet.seq, packet.ack, packet.flags) == (100, 200, 0x18)


def test_vlan_and_qinq_tags() -> None:
    for tags in (1, 2):
        packet = decode(LINKTYPE_ETHERNET, ethernet(ipv4(17, udp(1, 47808, b"x")), 0x0800, tags))
        assert isinstance(packet, Packet)
        assert packet.dport == 47808 and packet.payload == b"x"


def test_ethernet_padding_is_cut_at_the_ip_total_length() -> None:
    frame = ethernet(ipv4(6, tcp(1, 502, b"ab"))) + b"\0" * 10
    packet = decode(LINKTYPE_ETHERNET, frame)
    assert isinstance(packet, Packet) and packet.payload == b"ab"


def test_ip_options_and_tcp_options_are_skipped() -> None:
    frame = ethernet(ipv4(6, tcp(1, 502, b"data", offset=8), ihl=6))
    packet = decode(LINKTYPE_ETHERNET, frame)
    assert isinstance(packet, Packet) and packet.payload == b"data"


def test_ipv6_with_extension_headers() -> None:
    body = udp(5, 20000, b"dnp")
    hop_by_hop = bytes([17, 0]) + b"\0" * 6
    header = struct.pack("!IHBB16s16s", 0x60000000, len(hop_by_hop) + len(body), 0, 64,
                         b"\0" * 15 + b"\1", b"\0" * 15 + b"\2")  # fmt: skip
    packet = decode(LINKTYPE_ETHERNET, ethernet(header + hop_by_hop + body, 0x86DD))
    assert isinstance(packet, Packet)
    assert packet.proto == PROTO_UDP and packet.payload == b"dnp"
    assert len(packet.src_ip) == 16


def test_cooked_and_raw_link_types() -> None:
    ip = ipv4(6, tcp(1, 502, b"z"))
    sll = struct.pack("!HHH8sH", 0, 1, 6, bytes.fromhex("0a0b0c0d0e0f0000"), 0x0800)
    sll2 = struct.pack("!HHIHBB8s", 0x0800, 0, 2, 1, 0, 6, bytes.fromhex("0a0b0c0d0e0f0000"))
    for linktype, frame in (
        (LINKTYPE_LINUX_SLL, sll + ip),
        (LINKTYPE_LINUX_SLL2, sll2 + ip),
        (LINKTYPE_RAW, ip),
        (LINKTYPE_IPV4, ip),
        (LINKTYPE_NULL, struct.pack("<I", 2) + ip),
    ):
        packet = decode(linktype, frame)
        assert isinstance(packet, Packet), linktype
        assert packet.payload == b"z"
    cooked = decode(LINKTYPE_LINUX_SLL, sll + ip)
    assert isinstance(cooked, Packet) and cooked.src_mac == bytes.fromhex("0a0b0c0d0e0f")


def test_fragments_and_other_traffic_are_skipped_not_errors() -> None:
    assert decode(LINKTYPE_ETHERNET, ethernet(ipv4(6, b"\0" * 8, frag=0x2000))) is Skipped.FRAGMENT
    assert decode(LINKTYPE_ETHERNET, ethernet(ipv4(6, b"\0" * 8, frag=5))) is Skipped.FRAGMENT
    assert decode(LINKTYPE_ETHERNET, ethernet(b"\0" * 28, 0x0806)) is Skipped.NOT_IP
    assert decode(LINKTYPE_ETHERNET, ethernet(ipv4(1, b"\0" * 8))) is Skipped.OTHER_TRANSPORT
    assert decode(9999, b"\0" * 40) is Skipped.LINKTYPE


@pytest.mark.parametrize(
    "frame",
    [
        b"\0" * 5,
        ethernet(b"\x45\0\0"),
        ethernet(ipv4(6, tcp(1, 2, b""))[:30]),
        ethernet(ipv4(6, b"", ihl=4)),
        ethernet(ipv4(6, tcp(1, 2, b""), total=10)),
        ethernet(b"\x55" + ipv4(6, tcp(1, 2, b""))[1:]),
        ethernet(ipv4(6, tcp(1, 2, b"", offset=3))),
        ethernet(ipv4(6, tcp(1, 2, b"", offset=15)[:20])),
        ethernet(ipv4(17, udp(1, 2, b"", length=4))),
        ethernet(ipv4(17, b"\0" * 4)),
        ethernet(b"", 0x8100, 0) + b"\0",
        ethernet(ipv4(6, tcp(1, 2, b"")), 0x8100, 5),
    ],
)
def test_malformed_frames_give_a_reason(frame: bytes) -> None:
    result = decode(LINKTYPE_ETHERNET, frame)
    assert isinstance(result, str) and result


def test_offloaded_ipv4_with_zero_total_length_uses_the_captured_bytes() -> None:
    frame = ethernet(ipv4(6, tcp(1, 502, b"offload"), total=0))
    packet = decode(LINKTYPE_ETHERNET, frame)
    assert isinstance(packet, Packet) and packet.payload == b"offload"
