"""Link, network and transport decoding of one captured frame.

The result is deliberately flat (one small object per packet, addresses kept as
raw bytes) because this runs for every packet on the wire; text forms of
addresses are only made when a new flow appears. Anything that cannot be
decoded comes back as a reason string, never as an exception, since capture
contents are attacker-controlled.
"""

from __future__ import annotations

import enum
from struct import Struct, unpack_from

LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW_BSD = 12
LINKTYPE_LOOP = 108
LINKTYPE_RAW_OPENBSD = 14
LINKTYPE_RAW = 101
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
VLAN_ETHERTYPES = frozenset({0x8100, 0x88A8, 0x9100})
MAX_VLAN_TAGS = 4

PROTO_TCP = 6
PROTO_UDP = 17
IPV6_EXTENSIONS = frozenset({0, 43, 60})
IPV6_FRAGMENT = 44
IPV6_AH = 51
MAX_IPV6_EXTENSIONS = 8

TCP_FIN = 0x01
TCP_SYN = 0x02
TCP_RST = 0x04
TCP_ACK = 0x10

# Precompiled layouts: the ones used for every packet skip the format-string
# cache lookup that a plain ``unpack_from("!...")`` pays on each call.
_U16 = Struct("!H")
# Untagged Ethernet then an IPv4 header: MACs, ethertype and the IPv4 fields below.
_ETHER_IPV4 = Struct("!6s6sHB1xH2xH1xB2x4s4s")
_IPV4 = Struct("!B1xH2xH1xB2x4s4s")  # version/IHL, total, flags/offset, proto, addresses
_TCP = Struct("!HHIIBB")  # ports, seq, ack, data offset, flags
_UDP = Struct("!HHH")  # ports, length


class Skipped(enum.Enum):
    """Frames that decode fine but carry nothing the sensor follows."""

    NOT_IP = "not IP"
    FRAGMENT = "IP fragment"
    OTHER_TRANSPORT = "neither TCP nor UDP"
    LINKTYPE = "unsupported link type"


class Packet:
    """The parts of a TCP or UDP packet the flow table and dissectors need."""

    __slots__ = (
        "ack",
        "dport",
        "dst_ip",
        "dst_mac",
        "flags",
        "payload",
        "proto",
        "seq",
        "sport",
        "src_ip",
        "src_mac",
    )

    def __init__(
        self,
        src_mac: bytes | None,
        dst_mac: bytes | None,
        src_ip: bytes,
        dst_ip: bytes,
        proto: int,
        sport: int,
        dport: int,
        flags: int,
        seq: int,
        ack: int,
        payload: bytes,
    ) -> None:
        self.src_mac = src_mac
        self.dst_mac = dst_mac
        self.src_ip = src_ip
        self.dst_ip = dst_ip
        self.proto = proto
        self.sport = sport
        self.dport = dport
        self.flags = flags
        self.seq = seq
        self.ack = ack
        self.payload = payload


# src_mac, dst_mac, src_ip, dst_ip, proto, sport, dport, flags, seq, ack, payload
PacketFields = tuple[bytes | None, bytes | None, bytes, bytes, int, int, int, int, int, int, bytes]
Decoded = Packet | Skipped | str


def decode(linktype: int, frame: bytes) -> Decoded:
    """Decode *frame* captured with *linktype* down to its TCP/UDP payload."""
    found = decode_fields(linktype, frame)
    return Packet(*found) if isinstance(found, tuple) else found


def decode_fields(linktype: int, frame: bytes) -> PacketFields | Skipped | str:
    """:func:`decode`, with a decoded packet as a plain tuple in :class:`Packet` order.

    The sensor unpacks this tuple straight into local variables: building and
    then reading back an object costs more than the rest of decoding for the
    short frames industrial protocols use.

    Nearly every frame on an industrial network is untagged Ethernet carrying
    IPv4 without options, so that case is read with two precompiled unpacks;
    any frame it does not fully accept is decoded again by the general path,
    which also produces the reason a malformed frame is rejected.
    """
    n = len(frame)
    if linktype == LINKTYPE_ETHERNET and n >= 42:
        dst_mac, src_mac, ethertype, vihl, total, frag, proto, src_ip, dst_ip = (
            _ETHER_IPV4.unpack_from(frame)
        )
        if ethertype == ETHERTYPE_IPV4 and vihl == 0x45 and not frag & 0x3FFF:
            end = 14 + total if 14 + total < n else n
            if proto == PROTO_TCP and end >= 54:
                sport, dport, seq, ack, data_offset, flags = _TCP.unpack_from(frame, 34)
                start = 34 + (data_offset >> 4) * 4
                if start >= 54 and start <= end:
                    payload = frame[start:end]
                    return (
                        src_mac,
                        dst_mac,
                        src_ip,
                        dst_ip,
                        proto,
                        sport,
                        dport,
                        flags,
                        seq,
                        ack,
                        payload,
                    )
            elif proto == PROTO_UDP and end >= 42:
                sport, dport, length = _UDP.unpack_from(frame, 34)
                if length >= 8:
                    payload = frame[42 : min(end, 34 + length)]
                    return (src_mac, dst_mac, src_ip, dst_ip, proto, sport, dport, 0, 0, 0, payload)
    return _decode_general(linktype, frame)


def _decode_general(linktype: int, frame: bytes) -> PacketFields | Skipped | str:
    """Every link type, VLAN tags, IPv4 options, IPv6 and every malformation."""
    n = len(frame)
    src_mac: bytes | None = None
    dst_mac: bytes | None = None
    if linktype == LINKTYPE_ETHERNET:
        if n < 14:
            return f"truncated Ethernet header ({n} bytes)"
        dst_mac = frame[0:6]
        src_mac = frame[6:12]
        ethertype = frame[12] << 8 | frame[13]
        offset = 14
        tags = 0
        while ethertype in VLAN_ETHERTYPES:
            tags += 1
            if tags > MAX_VLAN_TAGS:
                return "too many VLAN tags"
            if n < offset + 4:
                return "truncated VLAN tag"
            (ethertype,) = _U16.unpack_from(frame, offset + 2)
            offset += 4
    elif linktype == LINKTYPE_LINUX_SLL:
        if n < 16:
            return f"truncated Linux cooked header ({n} bytes)"
        (addr_len,) = unpack_from("!H", frame, 4)
        if addr_len == 6:
            src_mac = frame[6:12]
        (ethertype,) = unpack_from("!H", frame, 14)
        offset = 16
    elif linktype == LINKTYPE_LINUX_SLL2:
        if n < 20:
            return f"truncated Linux cooked v2 header ({n} bytes)"
        (ethertype,) = unpack_from("!H", frame, 0)
        if frame[11] == 6:
            src_mac = frame[12:18]
        offset = 20
    elif linktype in (LINKTYPE_RAW, LINKTYPE_RAW_BSD, LINKTYPE_RAW_OPENBSD):
        if n < 1:
            return "empty raw IP frame"
        version = frame[0] >> 4
        ethertype = ETHERTYPE_IPV4 if version == 4 else ETHERTYPE_IPV6 if version == 6 else 0
        offset = 0
    elif linktype == LINKTYPE_IPV4:
        ethertype, offset = ETHERTYPE_IPV4, 0
    elif linktype == LINKTYPE_IPV6:
        ethertype, offset = ETHERTYPE_IPV6, 0
    elif linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
        if n < 4:
            return "truncated loopback header"
        # The family is in the capturing host's byte order: the small reading wins.
        family = min(unpack_from("<I", frame, 0)[0], unpack_from(">I", frame, 0)[0])
        ethertype = (
            ETHERTYPE_IPV4 if family == 2 else ETHERTYPE_IPV6 if family in (24, 28, 30) else 0
        )
        offset = 4
    else:
        return Skipped.LINKTYPE

    if ethertype == ETHERTYPE_IPV4:
        if n < offset + 20:
            return "truncated IPv4 header"
        vihl, total, frag, proto, src_ip, dst_ip = _IPV4.unpack_from(frame, offset)
        if vihl >> 4 != 4:
            return f"IPv4 header with version {vihl >> 4}"
        ihl = (vihl & 0x0F) * 4
        if ihl < 20:
            return f"IPv4 header length {ihl} below 20"
        if total == 0:
            # Segmentation offload: the host captured before the NIC split
            # the packet, so the header carries no length; use what is there.
            total = n - offset
        if total < ihl:
            return f"IPv4 total length {total} below header length {ihl}"
        if n < offset + ihl:
            return "truncated IPv4 options"
        if frag & 0x3FFF:
            return Skipped.FRAGMENT
        end = min(n, offset + total)
        offset += ihl
    elif ethertype == ETHERTYPE_IPV6:
        if n < offset + 40:
            return "truncated IPv6 header"
        if frame[offset] >> 4 != 6:
            return f"IPv6 header with version {frame[offset] >> 4}"
        plen, proto = unpack_from("!HB", frame, offset + 4)
        src_ip = frame[offset + 8 : offset + 24]
        dst_ip = frame[offset + 24 : offset + 40]
        end = min(n, offset + 40 + plen) if plen else n
        offset += 40
        hops = 0
        while proto in IPV6_EXTENSIONS or proto in (IPV6_FRAGMENT, IPV6_AH):
            hops += 1
            if hops > MAX_IPV6_EXTENSIONS or end < offset + 8:
                return "truncated or looping IPv6 extension headers"
            if proto == IPV6_FRAGMENT:
                (frag,) = unpack_from("!H", frame, offset + 2)
                if frag & 0xFFF9:
                    return Skipped.FRAGMENT
                length = 8
            elif proto == IPV6_AH:
                length = (frame[offset + 1] + 2) * 4
            else:
                length = (frame[offset + 1] + 1) * 8
            proto = frame[offset]
            offset += length
    else:
        return Skipped.NOT_IP

    if proto == PROTO_TCP:
        if end < offset + 20:
            return "truncated TCP header"
        sport, dport, seq, ack, data_offset, flags = _TCP.unpack_from(frame, offset)
        header = (data_offset >> 4) * 4
        if header < 20:
            return f"TCP header length {header} below 20"
        if end < offset + header:
            return f"TCP header length {header} beyond the packet"
        payload = frame[offset + header : end]
        return (src_mac, dst_mac, src_ip, dst_ip, PROTO_TCP, sport, dport, flags, seq, ack, payload)
    if proto == PROTO_UDP:
        if end < offset + 8:
            return "truncated UDP header"
        sport, dport, length = _UDP.unpack_from(frame, offset)
        if length < 8:
            return f"UDP length {length} below 8"
        stop = min(end, offset + length)
        return (
            src_mac,
            dst_mac,
            src_ip,
            dst_ip,
            PROTO_UDP,
            sport,
            dport,
            0,
            0,
            0,
            frame[offset + 8 : stop],
        )
    return Skipped.OTHER_TRANSPORT
