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
    InvalidField,
    TooLarge,
    UnknownType,
    UnsupportedVersion,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

VERSION = 1
CORRELATION_BYTES = 8
DEFAULT_PREFIX = "sevenfold"
SERVER_IDENTITY = "sevenfold-server"

# What every device must be able to decode: the largest powers of two whose
# worst-case messages a 64 KiB MicroPython heap decodes with a fifth of its
# free heap held back and three quarters of its stack taken, as measured by
# tests/device_runtime/test_protocol_limits.py (numbers in docs/protocol.md).
MAX_MESSAGE = 4096
"""Bytes of one encoded request (device to server), checked before decoding: evidence
with its certificate chain must fit."""
MAX_DOWN_MESSAGE = 2048
"""Bytes of one encoded answer or push (server to device), checked before decoding: what a
64 KiB device must be able to decode (docs/protocol.md), a fleet certificate included."""
MAX_DEPTH = 16
"""Nesting of arrays, maps and tags; the envelope is the first level."""
MAX_ITEMS = 32
"""Entries of one array or map (a key with its value is one entry)."""
MAX_TOTAL_ITEMS = 64
"""Data items in one message: each can cost a small device 64 bytes of heap."""

MAX_TEXT = 256
MAX_DEVICE_ID = 63
"""Longest device id: it is a topic level and a certificate CN."""
MAX_COUNTER = 0x7FFFFFFFFFFFFFFF
"""Largest heartbeat sequence number and uptime: storage keeps them as signed 64-bit."""
MAX_RETRY_AFTER_MS = 600000
"""Longest wait a server may ask of a device (ten minutes), in milliseconds."""
MAX_HEARTBEAT_INTERVAL = 86400
"""Longest heartbeat interval a server may set, in seconds (a day)."""

ROOTS_OF_TRUST = ("software", "tpm", "dice")
VERDICTS = ("affirming", "warning", "contraindicated")
"""Attestation results, after EAR's status tiers."""
NONCE_BYTES = 32
MAX_TOKEN = 3072
"""Bytes of one evidence token (docs/eat-profile.md): it rides in one message with its quote."""
MAX_QUOTE = 512
"""Bytes of a TPMS_ATTEST quote over two PCRs: about 150; the rest is headroom."""
MAX_CERTIFICATE = 1024
"""Bytes of a DER fleet certificate: about 500 for a P-256 key and a short name."""

_U32 = 0xFFFFFFFF
_U64 = 0xFFFFFFFFFFFFFFFF
_SHOWN = 32


# A schema is one flat tuple of fields, each FIELD values long: name, type,
# required (1 or 0), minimum, maximum, choices. Integers are unsigned and lie in
# [minimum, maximum]; text is at most ``maximum`` characters and, when *choices*
# is given, one of them; byte strings are ``minimum`` to ``maximum`` bytes. One
# flat tuple per message type rather than a map of tuples: on a 64 KiB device
# every schema object is heap, and this shape takes about 1 KB less of it
# (measured on the unix port with these schemas).
FIELD = 6
# fmt: off
SCHEMAS: "dict[str, tuple[Any, ...]]" = {
    "enroll": (
        "device_id", str, 1, 0, MAX_DEVICE_ID, None,
        "hwmodel", str, 1, 0, 64, None,
        "swname", str, 1, 0, 64, None,
        "swversion", str, 1, 0, 32, None,
        "rot", str, 1, 0, 16, ROOTS_OF_TRUST,
        "boot_count", int, 1, 0, _U32, None,
    ),
    "heartbeat": (
        "seq", int, 1, 0, MAX_COUNTER, None,
        "uptime", int, 1, 0, MAX_COUNTER, None,
        "boot_count", int, 1, 0, _U32, None,
    ),
    "enrolled": (
        # 0 would make the agent beat in a busy loop.
        "heartbeat_interval", int, 1, 1, MAX_HEARTBEAT_INTERVAL, None,
        "server_time", int, 1, 0, _U64, None,
    ),
    "heartbeat-ack": (
        "seq", int, 1, 0, MAX_COUNTER, None,
        "server_time", int, 1, 0, _U64, None,
    ),
    "challenge": (),
    "challenge-issued": (
        "nonce", bytes, 1, NONCE_BYTES, NONCE_BYTES, None,
        "expires_in", int, 1, 1, 3600, None,
    ),
    "evidence": (
        "token", bytes, 1, 1, MAX_TOKEN, None,
        "quote", bytes, 0, 1, MAX_QUOTE, None,
        "quote_signature", bytes, 0, 64, 64, None,
    ),
    "attested": (
        "status", str, 1, 0, 16, VERDICTS,
        "code", str, 1, 0, 32, None,
        "reason", str, 1, 0, MAX_TEXT, None,
        "certificate", bytes, 0, 1, MAX_CERTIFICATE, None,
        "not_after", int, 0, 0, _U64, None,
        "server_time", int, 1, 0, _U64, None,
    ),
    "attest-now": (),
    "error": (
        "code", str, 1, 0, 32, None,
        "reason", str, 1, 0, MAX_TEXT, None,
        "retry_after", int, 0, 0, MAX_RETRY_AFTER_MS, None,
    ),
}
# fmt: on


RESPONSES = {
    "enroll": "enrolled",
    "heartbeat": "heartbeat-ack",
    "challenge": "challenge-issued",
    "evidence": "attested",
}
ATTESTATION_PLANE = "att"
APPLICATION_PLANE = "app"
PLANES = {
    "enroll": APPLICATION_PLANE,
    "heartbeat": APPLICATION_PLANE,
    "challenge": ATTESTATION_PLANE,
    "evidence": ATTESTATION_PLANE,
}
"""Which topics a request travels on (the requests are ``RESPONSES``'s keys). The broker
grants the attestation plane to every certified device and the application plane only to
those holding a current pass (docs/protocol.md), so a request on the wrong plane is
refused."""


def add_request(
    kind: str,
    schema: "tuple[Any, ...]",
    response: str,
    response_schema: "tuple[Any, ...]",
    plane: str = APPLICATION_PLANE,
) -> None:
    """Declare a request and its response, for the devices (and servers) that speak it.

    A message only some devices use is declared by the module that uses it, when
    it is imported, so a device without it does not carry its schemas in its heap.
    Declaring a kind again is a no-op. Every device holds this function, so it
    checks nothing more: the names are the declaring module's to choose.
    """
    if kind not in RESPONSES:
        SCHEMAS[kind] = schema
        SCHEMAS[response] = response_schema
        RESPONSES[kind] = response
        PLANES[kind] = plane


def topic(prefix: str, device_id: str, leaf: str) -> str:
    """A device's topic; *leaf* is `up`/`down` (application plane) or `att/up`/`att/down`."""
    return prefix + "/d/" + device_id + "/" + leaf


def check_device_id(device_id: object) -> str:
    """Device ids become topic levels and certificate CNs: keep them boring."""
    if not isinstance(device_id, str) or not 1 <= len(device_id) <= MAX_DEVICE_ID:
        raise InvalidField("device id must be 1-" + str(MAX_DEVICE_ID) + " characters")
    if device_id == SERVER_IDENTITY:
        raise InvalidField("device id " + repr(device_id) + " is reserved for the fleet server")
    for i, ch in enumerate(device_id):
        ok = ("a" <= ch <= "z") or ("0" <= ch <= "9") or (ch == "-" and i > 0)
        if not ok:
            raise InvalidField("device id " + repr(device_id) + " has a forbidden character")
    return device_id


def shown(value: object) -> str:
    """A peer's value for an error reason: short, escaped, and cheap however large it is.

    Reasons end up in logs and operator terminals, and a device must be able
    to build one for a value that takes most of its heap.
    """
    if isinstance(value, (str, bytes)):
        if len(value) > _SHOWN:
            return repr(value[:_SHOWN]) + "..."
        return repr(value)
    if value is None or isinstance(value, int):
        return repr(value)
    return "a value of type " + type(value).__name__


def is_control(ch: str) -> bool:
    """C0, DEL or C1: characters that steer a terminal or forge a log line."""
    code = ord(ch)
    return code < 0x20 or 0x7F <= code <= 0x9F


def _control_character_at(text: str) -> int:
    """Index of the first control character in *text*, else -1."""
    for i, ch in enumerate(text):
        if is_control(ch):
            return i
    return -1


def _check_text_keys(where: str, mapping: "dict[object, object]") -> None:
    """Every key must be text before any lookup: MicroPython warns on the console
    each time a lookup compares a byte string with text."""
    for key in mapping:
        if not isinstance(key, str):
            raise InvalidField(where + ": key " + shown(key) + " is not text")


def _check_body(kind: str, body: object) -> "dict[str, object]":
    if not isinstance(body, dict):
        raise InvalidField(kind + ": body must be a map")
    _check_text_keys(kind, body)
    schema = SCHEMAS[kind]
    names = [schema[at] for at in range(0, len(schema), FIELD)]  # MicroPython: no slice step
    for key in body:
        if key not in names:
            raise InvalidField(kind + ": unexpected field " + shown(key))
    for at in range(0, len(schema), FIELD):
        name = schema[at]
        ftype = schema[at + 1]
        minimum = schema[at + 3]
        maximum = schema[at + 4]
        choices = schema[at + 5]
        if name not in body:
            if schema[at + 2]:
                raise InvalidField(kind + ": missing field " + repr(name))
            continue
        value = body[name]
        where = kind + "." + name
        if ftype is bytes:
            if not isinstance(value, bytes):
                raise InvalidField(where + " must be a byte string")
            if len(value) > maximum:
                raise TooLarge(where + " is longer than " + str(maximum) + " bytes")
            if len(value) < minimum:
                raise InvalidField(where + " is shorter than " + str(minimum) + " bytes")
            continue
        if ftype is int:
            if not isinstance(value, int) or isinstance(value, bool):
                raise InvalidField(where + " must be an unsigned integer")
            if value < minimum or value > maximum:
                raise InvalidField(
                    where + " is out of range (" + str(minimum) + " to " + str(maximum) + ")"
                )
            continue
        if not isinstance(value, str):
            raise InvalidField(where + " must be text")
        if len(value) > maximum:
            raise TooLarge(where + " is longer than " + str(maximum))
        at = _control_character_at(value)
        if at >= 0:
            raise InvalidField(where + " has a control character at index " + str(at))
        if choices is not None and value not in choices:
            raise InvalidField(where + " must be one of " + ", ".join(choices))
    return body


def encode(kind: str, correlation: bytes, body: "dict[str, object]") -> bytes:
    """Build a message, validating it first so a bad one never leaves this side."""
    if kind not in SCHEMAS:
        raise UnknownType("unknown message type " + shown(kind))
    if not isinstance(correlation, bytes) or len(correlation) != CORRELATION_BYTES:
        raise InvalidField("correlation id must be " + str(CORRELATION_BYTES) + " bytes")
    _check_body(kind, body)
    data = cbor.dumps({"v": VERSION, "t": kind, "id": correlation, "b": body})
    limit = MAX_MESSAGE if kind in RESPONSES else MAX_DOWN_MESSAGE
    if len(data) > limit:
        raise TooLarge("message is " + str(len(data)) + " bytes, limit " + str(limit))
    return data


class Envelope:
    """A decoded, validated message."""

    __slots__ = ("body", "correlation", "kind")

    def __init__(self, kind: str, correlation: bytes, body: "dict[str, object]") -> None:
        self.kind = kind
        self.correlation = correlation
        self.body = body


def _loads(data: bytes, limit: int) -> object:
    """CBOR within the protocol's limits, the size checked before a byte is decoded."""
    if len(data) > limit:
        raise TooLarge("message is " + str(len(data)) + " bytes, limit " + str(limit))
    return cbor.loads(data, MAX_DEPTH, MAX_ITEMS, MAX_TOTAL_ITEMS)


def decode(data: bytes, limit: int = MAX_MESSAGE) -> Envelope:
    """Parse and validate one message of at most *limit* bytes; every failure is a
    ProtocolError subclass. A device decodes with ``MAX_DOWN_MESSAGE``: servers never
    send more, and a 64 KiB heap decodes no more with its margin."""
    message = _loads(data, limit)
    if not isinstance(message, dict):
        raise InvalidField("message must be a map")
    _check_text_keys("envelope", message)
    version = message.get("v")
    # bool is an int in Python and True == 1, but true is not a version number.
    if isinstance(version, bool) or version != VERSION:
        raise UnsupportedVersion("protocol version " + shown(version) + " is not " + str(VERSION))
    kind = message.get("t")
    if not isinstance(kind, str) or kind not in SCHEMAS:
        raise UnknownType("unknown message type " + shown(kind))
    correlation = message.get("id")
    if not isinstance(correlation, bytes) or len(correlation) != CORRELATION_BYTES:
        raise InvalidField("correlation id must be " + str(CORRELATION_BYTES) + " bytes")
    for key in message:
        if key not in ("v", "t", "id", "b"):
            raise InvalidField("unexpected envelope field " + shown(key))
    return Envelope(kind, correlation, _check_body(kind, message.get("b")))
