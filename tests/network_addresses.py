"""Where a test can play a device on another host: an address of this machine that is not loopback.

A broker that listens on loopback only is unreachable from any other host, so
reachability is tested by dialling one of this machine's own non-loopback
addresses, the way a device on the network would. A machine with loopback only
(some containers) has none; then a second loopback address (127.0.0.2) stands
in, with the broker told to listen on exactly that address.
"""

from __future__ import annotations

import ipaddress
import shutil
import socket
import subprocess
from dataclasses import dataclass

__all__ = ["SECOND_LOOPBACK", "DeviceSide", "device_side", "non_loopback_ipv4"]

SECOND_LOOPBACK = "127.0.0.2"


@dataclass(frozen=True, slots=True)
class DeviceSide:
    """What the broker listens on, and the address a device dials to reach it."""

    listen: str
    address: str

    @property
    def every_interface(self) -> bool:
        return ipaddress.ip_address(self.listen).is_unspecified


def _bindable(address: str) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((address, 0))
        except OSError:
            return False
    return True


def _interface_addresses() -> list[str]:
    """IPv4 addresses of this machine's interfaces, from ``ip -4 -o addr`` when it is there."""
    ip = shutil.which("ip") or shutil.which("ip", path="/usr/sbin:/sbin:/usr/bin:/bin")
    if ip is None:
        return []
    try:
        listing = subprocess.run(
            [ip, "-4", "-o", "addr", "show"], capture_output=True, text=True, timeout=10
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    found = []
    for line in listing.splitlines():  # "2: eth0    inet 192.0.2.2/24 brd ... scope global eth0"
        fields = line.split()
        if "inet" in fields[:-1]:
            found.append(fields[fields.index("inet") + 1].split("/")[0])
    return found


def _routed_address() -> list[str]:
    """The source address of the default route: connecting a UDP socket sends nothing."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        try:
            udp.connect(("192.0.2.1", 9))  # TEST-NET-1 (RFC 5737), never answered
        except OSError:
            return []
        return [str(udp.getsockname()[0])]


def non_loopback_ipv4() -> str | None:
    """An IPv4 address of this machine that is not loopback and can be listened on, or None."""
    for address in (*_interface_addresses(), *_routed_address()):
        parsed = ipaddress.ip_address(address)
        if not parsed.is_loopback and not parsed.is_unspecified and _bindable(address):
            return address
    return None


def device_side() -> DeviceSide:
    """Every interface and a non-loopback address when there is one, else 127.0.0.2 alone."""
    address = non_loopback_ipv4()
    if address is not None:
        return DeviceSide(listen="0.0.0.0", address=address)
    if not _bindable(SECOND_LOOPBACK):
        raise RuntimeError(f"this machine has neither a non-loopback address nor {SECOND_LOOPBACK}")
    return DeviceSide(listen=SECOND_LOOPBACK, address=SECOND_LOOPBACK)
