"""Mosquitto configuration and ACL text for the fleet's mutual-TLS broker.

Kept apart from process handling so the exact policy the broker enforces can be
read and tested as text. The ACLs rely on ``%u``, which mosquitto fills in from
the certificate CN because of ``use_identity_as_username``; ``%c`` would be the
client id, which any client picks freely.

The broker has two listeners, each with its own ACL file
(``per_listener_settings true``):

- the fleet listener trusts the fleet CA. Every client has the attestation
  plane of its own id (``{prefix}/d/%u/att/up`` and ``att/down``); only the
  device ids in the current grant set have the application plane
  (``{prefix}/d/<id>/up`` and ``down``), so a device the server quarantines
  keeps its connection and its way to attest again, and nothing else;
- the recovery listener trusts the manufacturer CAs, for boards that hold no
  usable fleet certificate. Its ``mount_point`` puts every topic of its clients
  under ``recovery/``, and its ACL grants only the attestation plane of the
  client's own CN there. The servers never connect to it: they reach
  ``recovery/{prefix}/d/#`` through the fleet listener.

Mosquitto 2.0's ``acl_file`` never checks SUBSCRIBE (every filter, ``$share/...``
included, is granted); what it enforces is "read" on each message it delivers,
checked against the message's own topic. So a device's subscription to another
device's topics, shared or not, yields nothing, and a server's shared
subscription needs nothing beyond its read grant on the device tree.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from device_runtime.core import protocol
from device_runtime.core.errors import InvalidField, TransportError

DEFAULT_LISTEN_ADDRESS = "127.0.0.1"
"""Where the managed broker listens unless told otherwise: this machine only.

Devices on other hosts need ``sevenfold server --broker-listen`` (an address of
this machine, or ``0.0.0.0`` / ``::`` for every interface) and the names they
use in ``--broker-name``.
"""
LOOPBACK_ADDRESS = "127.0.0.1"
"""Where this machine's own clients reach a broker that listens on every interface."""
EVERY_INTERFACE_V6 = "::"
"""Every interface, IPv6 and IPv4: mosquitto's own ``::`` would take IPv6 only."""

DEFAULT_BROKER_PORT = 8883
"""Where the managed broker listens unless told otherwise: the IANA port of MQTT over TLS.

Devices are configured with a host and a port, so the port must survive broker
restarts and server restarts; a free port picked at random (``port=None``) is
for tests only.
"""
DEFAULT_RECOVERY_PORT = 8884
"""The managed broker's recovery listener, for boards that present a manufacturer certificate."""
RECOVERY_MOUNT_POINT = "recovery/"
"""What the recovery listener puts before every topic its clients use."""

# One or more topic levels; no wildcards, no empty levels, no leading '$'.
_PREFIX = re.compile(r"^[A-Za-z0-9_-]+(?:/[A-Za-z0-9_-]+)*$")
# A server identity is a certificate CN used verbatim as a broker username.
_IDENTITY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# The longest device id the protocol accepts, hence the longest device topic level.
LONGEST_DEVICE_ID = protocol.MAX_DEVICE_ID
# PUBLISH variable header: topic length field and, at QoS 1 and 2, the packet id.
_TOPIC_LENGTH_BYTES = 2
_PACKET_ID_BYTES = 2
_FIXED_HEADER_TYPE_BYTES = 1


class BrokerError(TransportError):
    """The broker could not be configured, started or reached."""

    code = "broker"


class BrokerPortTaken(BrokerError):
    """Another process listens on the port the managed broker must use."""

    code = "broker-port-taken"

    def __init__(
        self,
        port: int,
        mosquitto_output: str,
        *,
        listen: str = DEFAULT_LISTEN_ADDRESS,
        option: str = "--broker-port",
    ) -> None:
        where = "every interface" if ipaddress.ip_address(listen).is_unspecified else listen
        super().__init__(
            f"port {port} on {where} is already in use by another process, so the managed"
            f" broker cannot listen there; stop that process or give the broker another port"
            f" (sevenfold server {option} PORT):\n{mosquitto_output}"
        )
        self.port = port


@dataclass(frozen=True)
class BrokerFiles:
    """Paths the configuration points mosquitto at."""

    ca_path: Path
    """The CAs the fleet listener trusts client certificates from."""
    cert_path: Path
    key_path: Path
    acl_path: Path
    recovery_ca_path: Path
    """The manufacturer CAs the recovery listener trusts (the fleet CA when none are)."""
    recovery_acl_path: Path


def check_prefix(prefix: str) -> str:
    """Reject prefixes that would let an ACL line match more than the fleet's own tree."""
    if not isinstance(prefix, str) or not _PREFIX.fullmatch(prefix):
        raise BrokerError(
            f"topic prefix {prefix!r} must be levels of letters, digits, _ or - joined by /"
        )
    return prefix


def check_port(port: int) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise BrokerError(f"port {port!r} is not a TCP port number")
    return port


def check_listen_address(address: str) -> str:
    """The managed broker's bind address: an IP address, returned in its usual spelling.

    An address rather than a name, because mosquitto would bind whichever
    address a name resolves to first, which may not be the interface meant.
    """
    if not isinstance(address, str):
        raise BrokerError(f"listen address {address!r} must be given as text")
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        raise BrokerError(
            f"listen address {address!r} is not an IP address; give 127.0.0.1 (this machine"
            f" only), 0.0.0.0 (every IPv4 interface), :: (every interface) or an address of one"
            f" of this machine's interfaces"
        ) from None
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.scope_id is not None:
        raise BrokerError(
            f"listen address {address!r} has a zone index; a link-local address cannot be"
            f" listened on through a config line, use a global address or ::"
        )
    if parsed.is_multicast:
        raise BrokerError(f"listen address {address!r} is a multicast address, not an interface's")
    return str(parsed)


def local_address(listen: str) -> str:
    """Where a client on this machine (the start-up probe, the server) reaches the broker.

    Loopback when it listens on every interface; else the one address it listens on.
    """
    return LOOPBACK_ADDRESS if ipaddress.ip_address(listen).is_unspecified else listen


def is_fleet_server_name(identity: str) -> bool:
    """True for the names fleet servers hold: ``sevenfold-server`` and ``sevenfold-server.<n>``.

    These are the CNs :mod:`fleet_platform.server_replicas` hands out and the
    managed broker's ACL grants every device's topics, so a certificate for one
    of them must come only from a key this installation generated. Compared
    without case, so that no look-alike can appear in logs either.
    """
    folded = identity.lower()
    reserved = protocol.SERVER_IDENTITY
    return folded == reserved or folded.startswith(reserved + ".")


def check_server_identity(identity: str) -> str:
    """Reject a server CN that a device could also hold: it would get every device's topics.

    Device ids are certificate CNs too, so a server identity must be one no
    device id can be: the reserved ``sevenfold-server``, or a name with a
    character device ids never have (a dot, as in ``sevenfold-server.2``).
    """
    if not isinstance(identity, str) or not _IDENTITY.fullmatch(identity):
        raise BrokerError(f"server identity {identity!r} is not a valid certificate CN")
    if identity == protocol.SERVER_IDENTITY:
        return identity
    try:
        protocol.check_device_id(identity)
    except InvalidField:
        return identity
    raise BrokerError(
        f"server identity {identity!r} is also a valid device id, so a device could hold it;"
        f" use {protocol.SERVER_IDENTITY!r} or a name with a dot such as"
        f" '{protocol.SERVER_IDENTITY}.2'"
    )


def recovery_topic(topic: str) -> str:
    """The broker's name for *topic* of a client on the recovery listener (its mount point)."""
    return RECOVERY_MOUNT_POINT + topic


def max_packet_size(prefix: str) -> int:
    """Mosquitto's ``max_packet_size`` for the fleet: one largest message on the longest topic.

    A PUBLISH is a type byte, the remaining length (1-4 bytes), the topic's
    2-byte length and bytes, a 2-byte packet id (QoS 1 and 2) and the payload.
    Mosquitto 2.0 compares *remaining length + 1* with the limit, leaving out
    the remaining-length bytes themselves, so the value is counted its way
    (the boundary is tested against the real broker). The limit is one for
    both listeners, and the longest topic is one servers publish to: the
    attestation down topic of a board on the recovery listener
    (``recovery/{prefix}/d/<id>/att/down``), which servers reach through the
    fleet listener under its full name. A server disconnected for an oversized
    message would drop every device.
    """
    longest_id = "x" * LONGEST_DEVICE_ID
    check_prefix(prefix)
    longest_topic = max(
        protocol.topic(prefix, longest_id, "up"),
        protocol.topic(prefix, longest_id, "down"),
        recovery_topic(protocol.topic(prefix, longest_id, "att/up")),
        recovery_topic(protocol.topic(prefix, longest_id, "att/down")),
        key=len,
    )
    remaining = _TOPIC_LENGTH_BYTES + len(longest_topic) + _PACKET_ID_BYTES + protocol.MAX_MESSAGE
    return _FIXED_HEADER_TYPE_BYTES + remaining


def check_granted(device_ids: Iterable[str]) -> tuple[str, ...]:
    """The device ids of a grant set, each checked as a topic level, sorted, once each.

    Raises :class:`InvalidField` for an id the protocol would not accept: it
    is written into the ACL as a topic level and a user name.
    """
    if isinstance(device_ids, str):
        raise BrokerError(
            f"granted devices must be a collection of ids, not the text {device_ids!r}"
        )
    return tuple(sorted({protocol.check_device_id(device_id) for device_id in device_ids}))


def acl_text(
    *, prefix: str, server_identities: tuple[str, ...], granted: Iterable[str] | None
) -> str:
    """The fleet listener's ACL: servers see everything, devices their planes.

    *granted* None is a broker without the attestation gate
    (``sevenfold server --no-attestation-gate``): every certified device gets
    its application plane by pattern, as before attestation existed.

    Every client may send on its own attestation up topic and receive on its
    attestation down topic, granted or not: that is how a quarantined device
    proves itself again. The application plane (``up`` and ``down``) is an
    allowlist, one ``user`` block per device id in *granted*; no grant, no
    application traffic. The servers' grant is what lets their shared
    subscriptions (``$share/<group>/<prefix>/d/+/up``) receive: mosquitto
    checks "read" on each delivered message's topic, not on the ``$share``
    filter. Their second grant is the recovery listener's tree, seen from the
    fleet listener. Pattern lines come first: a ``topic`` line belongs to the
    ``user`` line above it, and patterns to nobody.
    """
    check_prefix(prefix)
    if not server_identities:
        raise BrokerError("at least one server identity is needed to reach the devices")
    if len(set(server_identities)) != len(server_identities):
        raise BrokerError(f"server identities {server_identities!r} repeat a name")
    devices = () if granted is None else check_granted(granted)
    lines = [
        "# Every client: the attestation plane of its own certificate identity.",
        f"pattern write {protocol.topic(prefix, '%u', 'att/up')}",
        f"pattern read {protocol.topic(prefix, '%u', 'att/down')}",
        "",
        "# Fleet servers: every device's topics, on both listeners.",
    ]
    for identity in server_identities:
        check_server_identity(identity)
        lines += [
            f"user {identity}",
            f"topic readwrite {prefix}/d/#",
            f"topic readwrite {recovery_topic(prefix)}/d/#",
            "",
        ]
    if granted is None:
        lines += [
            "# No attestation gate: every certified device, the application plane.",
            f"pattern write {protocol.topic(prefix, '%u', 'up')}",
            f"pattern read {protocol.topic(prefix, '%u', 'down')}",
            "",
        ]
        return "\n".join(lines)
    lines.append("# Granted devices: the application plane.")
    for device_id in devices:
        lines += [
            f"user {device_id}",
            f"topic write {protocol.topic(prefix, device_id, 'up')}",
            f"topic read {protocol.topic(prefix, device_id, 'down')}",
            "",
        ]
    return "\n".join(lines)


def recovery_acl_text(*, prefix: str) -> str:
    """The recovery listener's ACL: each client's own attestation plane, nothing else.

    No ``user`` blocks at all: a manufacturer CA vouches for a board, not for
    a server, so a certificate it issued for a server's name gets only what
    any board gets. The topics carry the mount point, as mosquitto checks them.
    """
    check_prefix(prefix)
    return "\n".join(
        [
            "# Every client: the attestation plane of its own certificate identity.",
            f"pattern write {recovery_topic(protocol.topic(prefix, '%u', 'att/up'))}",
            f"pattern read {recovery_topic(protocol.topic(prefix, '%u', 'att/down'))}",
            "",
        ]
    )


MAX_QUEUED_MESSAGES = 100_000
MAX_QUEUED_BYTES = 64 << 20


def _listener_line(port: int, listen: str) -> str:
    # mosquitto binds "::" as IPv6 only; with no address it binds both families.
    return f"listener {port}" if listen == EVERY_INTERFACE_V6 else f"listener {port} {listen}"


def config_text(
    *,
    port: int,
    recovery_port: int,
    prefix: str,
    files: BrokerFiles,
    run_as: str,
    listen: str = DEFAULT_LISTEN_ADDRESS,
) -> str:
    """Broker configuration: the fleet and recovery listeners on *listen*, certificates required.

    Each listener has its own CA file and ACL file (``per_listener_settings``);
    both present the one broker certificate. The recovery listener's
    ``mount_point`` keeps its clients under ``recovery/``.

    The log never has a line per connection (``connection_messages false``):
    a device reconnecting in a loop must not be able to fill the disk. It keeps
    errors, warnings, notices and information, which without connection
    messages is mosquitto's own life (starting, the sockets it opened, config
    reloads, terminating): a takeover, an ACL denial, an oversized packet or a
    keep-alive timeout adds nothing (tested). Failed TLS handshakes still log
    an error each, so the output file is bounded besides
    (:mod:`fleet_platform.child_log`).
    """
    check_port(port)
    check_port(recovery_port)
    if port == recovery_port:
        raise BrokerError(f"the fleet and recovery listeners cannot share port {port}")
    listen = check_listen_address(listen)
    packet_limit = max_packet_size(prefix)
    for path in (
        files.ca_path,
        files.cert_path,
        files.key_path,
        files.acl_path,
        files.recovery_ca_path,
        files.recovery_acl_path,
    ):
        if any(ch in str(path) for ch in "\n\r"):
            raise BrokerError(f"path {str(path)!r} cannot be written into a mosquitto config")
    if not re.fullmatch(r"[A-Za-z0-9._-]+", run_as):
        raise BrokerError(f"user name {run_as!r} cannot be written into a mosquitto config")

    def listener(port: int, ca_path: Path, acl_path: Path) -> list[str]:
        return [
            _listener_line(port, listen),
            "protocol mqtt",
            "allow_anonymous false",
            f"acl_file {acl_path}",
            f"cafile {ca_path}",
            f"certfile {files.cert_path}",
            f"keyfile {files.key_path}",
            "tls_version tlsv1.2",
            "require_certificate true",
            "use_identity_as_username true",
            "use_username_as_clientid true",
        ]

    return "\n".join(
        [
            f"user {run_as}",
            "per_listener_settings true",
            "persistence false",
            "set_tcp_nodelay true",
            # Larger packets cannot hold a valid protocol message; the sender is disconnected.
            f"max_packet_size {packet_limit}",
            # The servers' sessions take every device's requests: during an enroll storm
            # mosquitto's default of 1,000 queued messages per client silently drops the
            # rest. Deep but bounded, in messages and in bytes; the server itself answers
            # "busy" when it cannot keep up, which a dropped message never could.
            f"max_queued_messages {MAX_QUEUED_MESSAGES}",
            f"max_queued_bytes {MAX_QUEUED_BYTES}",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages false",
            "",
            "# The fleet listener: attestation passes (and, without the gate, fleet certificates).",
            *listener(port, files.ca_path, files.acl_path),
            "",
            "# The recovery listener: manufacturer certificates, attestation only.",
            *listener(recovery_port, files.recovery_ca_path, files.recovery_acl_path),
            f"mount_point {RECOVERY_MOUNT_POINT}",
            "",
        ]
    )
