"""Link, network and transport decoding of one captured frame.

The result is deliberately flat (one small object per packet, addresses kept as
raw bytes) because this runs for every packet on the wire; text forms of
addresses are only made when a new flow appears. Anything that cannot be
decoded comes back as a reason string, never as an exception, since capture
contents are attacker-controlled.
"""

from __future__ import annotations

import enum
from struct import unpack_from

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


Decoded = Packet | Skipped | str


def decode(linktype: int, frame: bytes) -> Decoded:
    """Decode *frame* captured with *linktype* down to its TCP/UDP payload."""
    n = len(frame)
    src_mac: bytes | None = None
    dst_mac: bytes | None = None
    if linktype == LINKTYPE_ETHERNET:
        if n < 14:
            return f"truncated Ethernet header ({n} bytes)"
        dst_mac = frame[0:6]
        src_mac = frame[6:12]
        (ethertype,) = unpack_from("!H", frame, 12)
        offset = 14
        tags = 0
        while ethertype in VLAN_ETHERTYPES:
            tags += 1
            if tags > MAX_VLAN_TAGS:
                return "too many VLAN tags"
            if n < offset + 4:
                return "truncated VLAN tag"
            (ethertype,) = unpack_from("!H", frame, offset + 2)
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
        vihl = frame[offset]
        if vihl >> 4 != 4:
            return f"IPv4 header with version {vihl >> 4}"
        ihl = (vihl & 0x0F) * 4
        if ihl < 20:
            return f"IPv4 header length {ihl} below 20"
        total, frag, proto = unpack_from("!2xH2xH1xB", frame, offset)
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
        src_ip = frame[offset + 12 : offset + 16]
        dst_ip = frame[offset + 16 : offset + 20]
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
        sport, dport, seq, ack, data_offset, flags = unpack_from("!HHIIBB", frame, offset)
        header = (data_offset >> 4) * 4
        if header < 20:
            return f"TCP header length {header} below 20"
        if end < offset + header:
            return f"TCP header length {header} beyond the packet"
        return Packet(
            src_mac,
            dst_mac,
            src_ip,
            dst_ip,
            PROTO_TCP,
            sport,
            dport,
            flags,
            seq,
            ack,
            frame[offset + header : end],
        )
    if proto == PROTO_UDP:
        if end < offset + 8:
            return "truncated UDP header"
        sport, dport, length = unpack_from("!HHH", frame, offset)
        if length < 8:
            return f"UDP length {length} below 8"
        stop = min(end, offset + length)
        return Packet(
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
