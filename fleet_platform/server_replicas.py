"""How several fleet-server replicas share one broker: an identity each, one share group.

Every replica needs its own certificate CN: the broker uses the CN as the MQTT
username and, with ``use_username_as_clientid``, as the client id, so two
replicas with one CN would keep disconnecting each other. Replica CNs are
``sevenfold-server`` and ``sevenfold-server.<n>``; the dot makes them names no
device id can be (:func:`fleet_platform.broker_config.check_server_identity`).

Replicas receive device requests through one MQTT shared subscription, so the
broker hands each message to one replica of the group instead of to all of
them. The group name is derived from a secret the replicas share: Mosquitto
2.0's ACL file does not check SUBSCRIBE, so any client may join any share group,
and a device that joined the servers' group would be handed its turn of other
devices' requests, which the broker then drops because the device may not read
them. A group name a device cannot know keeps it out.
"""

from __future__ import annotations

import hashlib
import hmac

from device_runtime.core import protocol
from fleet_platform.broker_config import (
    RECOVERY_MOUNT_POINT,
    BrokerError,
    check_prefix,
    check_server_identity,
)

__all__ = [
    "replica_identities",
    "replica_identity",
    "share_group",
    "shared_filters",
    "shared_up_filter",
]

_SHARE_GROUP_LABEL = b"sevenfold mqtt share group v1"
_SHARE_GROUP_HEX = 32
"""128 bits of the HMAC: not guessable, short enough for a topic level."""


def replica_identity(index: int) -> str:
    """Certificate CN of replica *index*: 0 is ``sevenfold-server``, n is ``sevenfold-server.n``."""
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise BrokerError(f"replica index must be a non-negative integer, got {index!r}")
    if index == 0:
        return protocol.SERVER_IDENTITY
    return check_server_identity(f"{protocol.SERVER_IDENTITY}.{index}")


def replica_identities(count: int) -> tuple[str, ...]:
    """CNs of replicas 0 .. count-1, for ``MosquittoBroker.start(server_identities=...)``."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise BrokerError(f"replica count must be a positive integer, got {count!r}")
    return tuple(replica_identity(index) for index in range(count))


def share_group(secret: str) -> str:
    """The share-group name of the replicas that hold *secret* (e.g. the operator token).

    A keyed hash rather than the secret itself: the group name travels in
    SUBSCRIBE packets and may appear in broker logs.
    """
    if not isinstance(secret, str) or not secret:
        raise BrokerError("the share group needs a non-empty secret shared by the replicas")
    digest = hmac.new(secret.encode(), _SHARE_GROUP_LABEL, hashlib.sha256).hexdigest()
    return f"sevenfold-{digest[:_SHARE_GROUP_HEX]}"


def shared_up_filter(prefix: str, group: str) -> str:
    """``$share/<group>/<prefix>/d/+/up``: all devices' requests, each to one replica of *group*."""
    check_prefix(prefix)
    if not group or any(ch in group for ch in "/+#") or not group.isprintable():
        raise BrokerError(f"share group {group!r} must be one topic level without wildcards")
    return f"$share/{group}/{protocol.topic(prefix, '+', 'up')}"


def shared_filters(prefix: str, group: str) -> tuple[str, ...]:
    """Every filter a server subscribes in *group*: application requests, attestation requests
    on the fleet listener, and attestation requests through the recovery listener (its clients'
    topics arrive under :data:`RECOVERY_MOUNT_POINT`)."""
    application = shared_up_filter(prefix, group)
    attestation = protocol.topic(prefix, "+", "att/up")
    return (
        application,
        f"$share/{group}/{attestation}",
        f"$share/{group}/{RECOVERY_MOUNT_POINT}{attestation}",
    )
