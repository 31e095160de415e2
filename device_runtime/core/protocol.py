"""The device<->server message protocol: one implementation for both ends.

Every message is a CBOR map ``{"v": version, "t": type, "id": correlation id,
"b": body}``. The correlation id lets a response find its request on MQTT 3.1.1,
which has no response-topic property. Bodies are checked against the schemas
below on both sides, so a device and the server can never disagree about what a
well-formed message is. The authenticated identity of a sender is the device id
in its topic (the broker binds it to the certificate); a body that names another
device is an identity mismatch. Runs unchanged under MicroPython.
"""

from device_runtime.core import cbor
from device_runtime.core.errors import (
    IdentityMismatch,
    InvalidField,
    ProtocolError,
    RetryLater,
    TooLarge,
    UnknownType,
    UnsupportedVersion,
)

VERSION = 1
MAX_MESSAGE = 16384
MAX_TEXT = 256
CORRELATION_BYTES = 8
DEFAULT_PREFIX = "sevenfold"
SERVER_IDENTITY = "sevenfold-server"

ROOTS_OF_TRUST = ("software", "tpm", "dice")

MAX_RETRY_AFTER_MS = 600000
"""Longest wait a server may ask of a device (ten minutes), in milliseconds."""

# name: (type, required, limit) — limit is a max length for text/bytes and an
# inclusive maximum for unsigned integers.
_U32 = 0xFFFFFFFF
_U64 = 0xFFFFFFFFFFFFFFFF
SCHEMAS: dict[str, dict[str, tuple[type, bool, int]]] = {
    "enroll": {
        "device_id": (str, True, 63),
        "hwmodel": (str, True, 64),
        "swname": (str, True, 64),
        "swversion": (str, True, 32),
        "rot": (str, True, 16),
        "boot_count": (int, True, _U32),
    },
    "heartbeat": {
        "seq": (int, True, _U64),
        "uptime": (int, True, _U64),
        "boot_count": (int, True, _U32),
    },
    "enrolled": {
        "heartbeat_interval": (int, True, 86400),
        "server_time": (int, True, _U64),
    },
    "heartbeat-ack": {
        "seq": (int, True, _U64),
        "server_time": (int, True, _U64),
    },
    "error": {
        "code": (str, True, 32),
        "reason": (str, True, MAX_TEXT),
        "retry_after": (int, False, MAX_RETRY_AFTER_MS),
    },
}

REQUESTS = ("enroll", "heartbeat")
RESPONSES = {"enroll": "enrolled", "heartbeat": "heartbeat-ack"}


def topic_up(prefix: str, device_id: str) -> str:
    return prefix + "/d/" + device_id + "/up"


def topic_down(prefix: str, device_id: str) -> str:
    return prefix + "/d/" + device_id + "/down"


def device_from_topic(prefix: str, topic: str) -> str:
    """The device id a broker-authenticated up topic belongs to."""
    parts = topic.split("/")
    head = prefix.split("/")
    n = len(head)
    if len(parts) != n + 3 or parts[:n] != head or parts[n] != "d" or parts[n + 2] != "up":
        raise InvalidField("topic " + repr(topic) + " is not a device up topic")
    check_device_id(parts[n + 1])
    return parts[n + 1]


def check_device_id(device_id: object) -> str:
    """Device ids become topic levels and certificate CNs: keep them boring."""
    if not isinstance(device_id, str) or not 1 <= len(device_id) <= 63:
        raise InvalidField("device id must be 1-63 characters")
    if device_id == SERVER_IDENTITY:
        raise InvalidField("device id " + repr(device_id) + " is reserved for the fleet server")
    for i, ch in enumerate(device_id):
        ok = ("a" <= ch <= "z") or ("0" <= ch <= "9") or (ch == "-" and i > 0)
        if not ok:
            raise InvalidField("device id " + repr(device_id) + " has a forbidden character")
    return device_id


def _check_body(kind: str, body: object) -> dict[str, object]:
    if not isinstance(body, dict):
        raise InvalidField(kind + ": body must be a map")
    schema = SCHEMAS[kind]
    for key in body:
        if key not in schema:
            raise InvalidField(kind + ": unexpected field " + repr(key))
    for name, (ftype, required, limit) in schema.items():
        if name not in body:
            if required:
                raise InvalidField(kind + ": missing field " + repr(name))
            continue
        value = body[name]
        if ftype is int:
            if not isinstance(value, int) or isinstance(value, bool):
                raise InvalidField(kind + "." + name + " must be an unsigned integer")
            if value < 0 or value > limit:
                raise InvalidField(kind + "." + name + " is out of range")
        elif not isinstance(value, ftype) or not isinstance(value, (str, bytes)):
            raise InvalidField(kind + "." + name + " must be " + ftype.__name__)
        elif len(value) > limit:
            raise TooLarge(kind + "." + name + " is longer than " + str(limit))
    return body


def encode(kind: str, correlation: bytes, body: dict[str, object]) -> bytes:
    """Build a message, validating it first so a bad one never leaves this side."""
    if kind not in SCHEMAS:
        raise UnknownType("unknown message type " + repr(kind))
    if not isinstance(correlation, bytes) or len(correlation) != CORRELATION_BYTES:
        raise InvalidField("correlation id must be " + str(CORRELATION_BYTES) + " bytes")
    _check_body(kind, body)
    data = cbor.dumps({"v": VERSION, "t": kind, "id": correlation, "b": body})
    if len(data) > MAX_MESSAGE:
        raise TooLarge("message is " + str(len(data)) + " bytes, limit " + str(MAX_MESSAGE))
    return data


class Envelope:
    """A decoded, validated message."""

    __slots__ = ("body", "correlation", "kind")

    def __init__(self, kind: str, correlation: bytes, body: dict[str, object]) -> None:
        self.kind = kind
        self.correlation = correlation
        self.body = body


def decode(data: bytes) -> Envelope:
    """Parse and validate one message; every failure is a ProtocolError subclass."""
    if len(data) > MAX_MESSAGE:
        raise TooLarge("message is " + str(len(data)) + " bytes, limit " + str(MAX_MESSAGE))
    message = cbor.loads(data, max_depth=4, max_items=64)
    if not isinstance(message, dict):
        raise InvalidField("message must be a map")
    version = message.get("v")
    if version != VERSION:
        raise UnsupportedVersion("protocol version " + repr(version) + " is not " + str(VERSION))
    kind = message.get("t")
    if not isinstance(kind, str) or kind not in SCHEMAS:
        raise UnknownType("unknown message type " + repr(kind))
    correlation = message.get("id")
    if not isinstance(correlation, bytes) or len(correlation) != CORRELATION_BYTES:
        raise InvalidField("correlation id must be " + str(CORRELATION_BYTES) + " bytes")
    for key in message:
        if key not in ("v", "t", "id", "b"):
            raise InvalidField("unexpected envelope field " + repr(key))
    return Envelope(kind, correlation, _check_body(kind, message.get("b")))


def decode_request(data: bytes, device_id: str) -> Envelope:
    """Server side: a request from *device_id*, the identity its certificate proves."""
    envelope = decode(data)
    if envelope.kind not in REQUESTS:
        raise UnknownType(repr(envelope.kind) + " is not a request")
    claimed = envelope.body.get("device_id")
    if claimed is not None and claimed != device_id:
        raise IdentityMismatch(
            "payload claims " + repr(claimed) + " but the certificate proves " + repr(device_id)
        )
    return envelope


def error_body(error: ProtocolError) -> dict[str, object]:
    reason = error.reason
    if len(reason) > MAX_TEXT:
        reason = reason[: MAX_TEXT - 3] + "..."
    body: dict[str, object] = {"code": error.code, "reason": reason}
    if isinstance(error, RetryLater):
        body["retry_after"] = min(max(error.retry_after_ms, 0), MAX_RETRY_AFTER_MS)
    return body


def correlation_of(data: bytes) -> bytes | None:
    """Best effort: the correlation id of a rejected message, so the error can be routed."""
    if len(data) > MAX_MESSAGE:
        return None
    try:
        message = cbor.loads(data, max_depth=4, max_items=64)
    except ProtocolError:
        return None
    if not isinstance(message, dict):
        return None
    correlation = message.get("id")
    if isinstance(correlation, bytes) and len(correlation) == CORRELATION_BYTES:
        return correlation
    return None
