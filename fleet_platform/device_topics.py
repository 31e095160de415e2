"""The server's reading of device topics: which device and plane an up topic belongs to.

The broker binds the device id in a topic to the certificate that published
it (``%u`` ACLs), so this parse is how the server learns who is speaking.
"""

from __future__ import annotations

from device_runtime.core import protocol
from device_runtime.core.errors import InvalidField


def route_of(prefix: str, topic: str) -> tuple[str, str]:
    """``(device id, plane)`` of a broker-authenticated up topic."""
    parts = topic.split("/")
    head = prefix.split("/")
    n = len(head)
    if parts[:n] == head and len(parts) > n + 2 and parts[n] == "d" and parts[-1] == "up":
        rest = len(parts) - n
        if rest == 3:
            return protocol.check_device_id(parts[n + 1]), protocol.APPLICATION_PLANE
        if rest == 4 and parts[n + 2] == protocol.ATTESTATION_PLANE:
            return protocol.check_device_id(parts[n + 1]), protocol.ATTESTATION_PLANE
    raise InvalidField("topic " + protocol.shown(topic) + " is not a device up topic")


def device_from_topic(prefix: str, topic: str) -> str:
    """The device id a broker-authenticated up topic belongs to."""
    return route_of(prefix, topic)[0]


def down_topic(plane: str, prefix: str, device_id: str) -> str:
    """Where the answer to a request that came on *plane* goes."""
    if plane == protocol.ATTESTATION_PLANE:
        return protocol.topic(prefix, device_id, "att/down")
    return protocol.topic(prefix, device_id, "down")
