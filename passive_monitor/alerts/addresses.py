"""Which addresses stand for a real host.

Broadcast and multicast destinations (BACnet Who-Is/I-Am, discovery traffic)
appear as the "server" of a datagram flow; counting them as assets or as scan
targets would invent devices that do not exist. Answers are cached because the
question is asked for both ends of every observation.
"""

from __future__ import annotations

import functools
import ipaddress


@functools.lru_cache(maxsize=65536)
def is_host(ip: str, *, transport: str = "") -> bool:
    """True for a unicast address that can belong to one device."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    if address.is_multicast or address.is_unspecified:
        return False
    if isinstance(address, ipaddress.IPv4Address):
        if address == ipaddress.IPv4Address("255.255.255.255"):
            return False
        # A directed broadcast cannot be told from a host without the netmask;
        # over UDP an address ending in .255 is nearly always the broadcast one.
        if transport == "udp" and ip.endswith(".255"):
            return False
    return True
