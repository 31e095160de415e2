"""MQTT 3.1.1 packets as bytes, with no I/O, so one codec serves MicroPython and CPython.

No MicroPython MQTT client installs from a package index, so the device carries
this small one. The broker is a peer like any other: every byte it sends is
checked (packet type, reserved flag bits, lengths, UTF-8 of topics, packet ids)
and anything off is a ``TransportError`` naming the fault, never an
``IndexError`` deep in a parser. The size limit is checked against the
remaining-length field before a single body byte is read, so a hostile length
cannot make a small device allocate or wait for megabytes.

Only what a device needs is here: it connects with a clean session and no
username or password (its certificate is its identity), publishes and
subscribes at QoS 0 or 1, answers keepalive, and disconnects.
"""

from device_runtime.core.errors import TransportError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    Body = bytes | bytearray
    """A packet body as read: bytes, or the bytearray it was read into."""
    Read = Callable[[int], Body]
    """read(n): exactly n bytes, or fewer once the stream has ended."""

CONNECT = 1
CONNACK = 2
PUBLISH = 3
PUBACK = 4
PUBREC = 5
PUBREL = 6
PUBCOMP = 7
SUBSCRIBE = 8
SUBACK = 9
UNSUBSCRIBE = 10
UNSUBACK = 11
PINGREQ = 12
PINGRESP = 13
DISCONNECT = 14

# Indexed by packet type, so a lookup cannot miss for any 4-bit value.
NAMES = (
    "reserved type 0",
    "CONNECT",
    "CONNACK",
    "PUBLISH",
    "PUBACK",
    "PUBREC",
    "PUBREL",
    "PUBCOMP",
    "SUBSCRIBE",
    "SUBACK",
    "UNSUBSCRIBE",
    "UNSUBACK",
    "PINGREQ",
    "PINGRESP",
    "DISCONNECT",
    "reserved type 15",
)

# The spec fixes the low nibble of every fixed header except PUBLISH's.
_REQUIRED_FLAGS = b"\x00\x00\x00\x00\x00\x00\x02\x00\x02\x00\x02\x00\x00\x00\x00\x00"

CONNACK_MEANINGS = (
    "accepted",
    "unacceptable protocol version",
    "client identifier rejected",
    "server unavailable",
    "bad user name or password",
    "not authorized",
)

SUBACK_FAILURE = 0x80
MAX_REMAINING_LENGTH = 268435455
MAX_STRING = 65535
PROTOCOL_LEVEL = 4


def refusal_reason(code: int) -> str:
    """Human meaning of a CONNACK return code, for the error a refused device logs."""
    meaning = CONNACK_MEANINGS[code] if 0 <= code < len(CONNACK_MEANINGS) else "unknown return code"
    return meaning + " (code " + str(code) + ")"


def _check_utf8(data: "Body") -> None:
    """Strict UTF-8 as MQTT demands; MicroPython's own decoder lets surrogates and overlongs by.

    U+0000 is refused too: the spec forbids it in every MQTT string.
    """
    i = 0
    n = len(data)
    while i < n:
        b = data[i]
        if b < 0x80:
            if b == 0:
                raise TransportError("string holds U+0000")
            i += 1
            continue
        if 0xC2 <= b <= 0xDF:
            extra = 1
            low = 0x80
            high = 0xBF
        elif 0xE0 <= b <= 0xEF:
            extra = 2
            low = 0xA0 if b == 0xE0 else 0x80
            high = 0x9F if b == 0xED else 0xBF
        elif 0xF0 <= b <= 0xF4:
            extra = 3
            low = 0x90 if b == 0xF0 else 0x80
            high = 0x8F if b == 0xF4 else 0xBF
        else:
            raise TransportError("string is not valid UTF-8")
        if i + extra >= n:
            raise TransportError("string is not valid UTF-8")
        if not low <= data[i + 1] <= high:
            raise TransportError("string is not valid UTF-8")
        for k in range(i + 2, i + 1 + extra):
            if not 0x80 <= data[k] <= 0xBF:
                raise TransportError("string is not valid UTF-8")
        i += 1 + extra


def _encode_string(text: str, what: str) -> bytes:
    if not isinstance(text, str):
        raise TransportError(what + " must be a str")
    raw = text.encode()
    if len(raw) > MAX_STRING:
        raise TransportError(what + " is over 65535 bytes of UTF-8")
    _check_utf8(raw)
    return len(raw).to_bytes(2, "big") + raw


def _check_packet_id(packet_id: object) -> None:
    if not isinstance(packet_id, int) or isinstance(packet_id, bool):
        raise TransportError("packet id must be an int")
    if not 1 <= packet_id <= 0xFFFF:
        raise TransportError("packet id must be in 1..65535")


def _check_topic_name(topic: str) -> bytes:
    """Length-prefixed topic for PUBLISH; wildcards are only for subscriptions."""
    encoded = _encode_string(topic, "topic")
    if not topic:
        raise TransportError("topic must not be empty")
    if "+" in topic or "#" in topic:
        raise TransportError("topic name must not hold wildcards")
    return encoded


def _check_topic_filter(topic: str) -> bytes:
    encoded = _encode_string(topic, "topic filter")
    if not topic:
        raise TransportError("topic filter must not be empty")
    levels = topic.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            raise TransportError("'#' must be a whole last level of the filter")
        if "+" in level and level != "+":
            raise TransportError("'+' must be a whole level of the filter")
    return encoded


def encode_remaining_length(length: int) -> bytes:
    """Variable-length integer of the fixed header: 7 bits a byte, low group first."""
    if not isinstance(length, int) or not 0 <= length <= MAX_REMAINING_LENGTH:
        raise TransportError("remaining length out of range")
    out = bytearray()
    while True:
        digit = length & 0x7F
        length >>= 7
        if length:
            out.append(digit | 0x80)
        else:
            out.append(digit)
            return bytes(out)


def _packet(ptype: int, flags: int, body: bytes) -> bytes:
    return bytes([(ptype << 4) | flags]) + encode_remaining_length(len(body)) + body


def encode_connect(client_id: str, keepalive: int) -> bytes:
    """CONNECT with a clean session and no credentials: the TLS certificate names the device."""
    if not isinstance(keepalive, int) or isinstance(keepalive, bool):
        raise TransportError("keepalive must be an int")
    if not 0 <= keepalive <= 0xFFFF:
        raise TransportError("keepalive must be in 0..65535 seconds")
    ident = _encode_string(client_id, "client id")
    if not client_id:
        raise TransportError("client id must not be empty: the broker logs and ACLs name it")
    header = b"\x00\x04MQTT" + bytes([PROTOCOL_LEVEL, 0x02]) + keepalive.to_bytes(2, "big")
    return _packet(CONNECT, 0, header + ident)


def encode_publish(topic: str, payload: bytes, qos: int = 0, packet_id: int = 0) -> bytes:
    """PUBLISH at QoS 0 (no id) or 1 (an id the PUBACK will echo); never retained."""
    if not isinstance(payload, (bytes, bytearray)):
        raise TransportError("payload must be bytes")
    name = _check_topic_name(topic)
    if qos == 0:
        if packet_id != 0:
            raise TransportError("QoS 0 PUBLISH carries no packet id")
        variable = name
    elif qos == 1:
        _check_packet_id(packet_id)
        variable = name + packet_id.to_bytes(2, "big")
    else:
        raise TransportError("only QoS 0 and 1 are published")
    return _packet(PUBLISH, qos << 1, variable + bytes(payload))


def encode_puback(packet_id: int) -> bytes:
    _check_packet_id(packet_id)
    return _packet(PUBACK, 0, packet_id.to_bytes(2, "big"))


def encode_subscribe(packet_id: int, topic: str, qos: int = 1) -> bytes:
    """SUBSCRIBE to one filter; one per packet keeps the SUBACK check unambiguous."""
    _check_packet_id(packet_id)
    if qos not in (0, 1, 2):
        raise TransportError("requested QoS must be 0, 1 or 2")
    body = packet_id.to_bytes(2, "big") + _check_topic_filter(topic) + bytes([qos])
    return _packet(SUBSCRIBE, 2, body)


def encode_pingreq() -> bytes:
    return bytes([PINGREQ << 4, 0])


def encode_disconnect() -> bytes:
    return bytes([DISCONNECT << 4, 0])


def _exact(read: "Read", n: int, what: str) -> "Body":
    data = read(n)
    if len(data) != n:
        raise TransportError("truncated packet: stream ended inside the " + what)
    return data


def read_fixed_header(read: "Read", max_packet: int) -> "tuple[int, int, int]":
    """Return (type, flags, remaining length) read one byte at a time through *read*.

    *read(n)* gives exactly *n* bytes, or fewer once the stream has ended. The
    length is refused when over *max_packet* before the caller reads the body.
    """
    first = _exact(read, 1, "fixed header")[0]
    ptype = first >> 4
    flags = first & 0x0F
    if ptype == 0 or ptype == 15:
        raise TransportError("reserved packet type " + str(ptype))
    if ptype == PUBLISH:
        if (flags >> 1) & 3 == 3:
            raise TransportError("PUBLISH with QoS 3")
    elif flags != _REQUIRED_FLAGS[ptype]:
        raise TransportError("reserved flag bits set in " + NAMES[ptype])
    length = 0
    shift = 0
    for _ in range(4):
        digit = _exact(read, 1, "remaining length")[0]
        length |= (digit & 0x7F) << shift
        if not digit & 0x80:
            break
        shift += 7
    else:
        raise TransportError("remaining length longer than 4 bytes")
    if length > max_packet:
        raise TransportError(
            NAMES[ptype]
            + " of "
            + str(length)
            + " bytes is over the "
            + str(max_packet)
            + "-byte limit"
        )
    return ptype, flags, length


def read_packet(read: "Read", max_packet: int) -> "tuple[int, int, Body]":
    """Return (type, flags, body) of the next packet on a stream."""
    ptype, flags, length = read_fixed_header(read, max_packet)
    body = _exact(read, length, NAMES[ptype] + " body") if length else b""
    return ptype, flags, body


class _Cursor:
    """Stream view of a buffer, so buffered and socket input share one header parser."""

    def __init__(self, *, data: "Body") -> None:
        self.data = data
        self.offset = 0

    def read(self, n: int) -> bytes:
        chunk = bytes(self.data[self.offset : self.offset + n])
        self.offset += len(chunk)
        return chunk


def split_packet(data: "Body", max_packet: int) -> "tuple[int, int, Body, bytes]":
    """Return (type, flags, body, rest) for the first packet in *data*."""
    cursor = _Cursor(data=data)
    ptype, flags, body = read_packet(cursor.read, max_packet)
    return ptype, flags, body, bytes(data[cursor.offset :])


def decode_connack(body: "Body") -> "tuple[bool, int]":
    """Return (session present, return code); the code is checked, the caller decides on it."""
    if len(body) != 2:
        raise TransportError("CONNACK body must be 2 bytes, got " + str(len(body)))
    ack_flags = body[0]
    code = body[1]
    if ack_flags & 0xFE:
        raise TransportError("reserved CONNACK flag bits set")
    if code >= len(CONNACK_MEANINGS):
        raise TransportError("CONNACK with unknown return code " + str(code))
    present = bool(ack_flags & 1)
    if code != 0 and present:
        raise TransportError("refusing CONNACK claims a session is present")
    return present, code


def _packet_id(body: "Body", offset: int, what: str) -> int:
    if len(body) < offset + 2:
        raise TransportError(what + " ends before its packet id")
    packet_id = (body[offset] << 8) | body[offset + 1]
    if packet_id == 0:
        raise TransportError(what + " with packet id 0")
    return packet_id


def decode_publish(flags: int, body: "Body") -> "tuple[str, bytes, int, int]":
    """Return (topic, payload, qos, packet id); the packet id is 0 at QoS 0."""
    qos = (flags >> 1) & 3
    if qos == 3:
        raise TransportError("PUBLISH with QoS 3")
    if qos == 0 and flags & 0x08:
        raise TransportError("QoS 0 PUBLISH with the DUP flag")
    if len(body) < 2:
        raise TransportError("PUBLISH ends before its topic length")
    size = (body[0] << 8) | body[1]
    end = 2 + size
    if len(body) < end:
        raise TransportError("PUBLISH ends inside its topic")
    if size == 0:
        raise TransportError("PUBLISH with an empty topic")
    raw = bytes(body[2:end])
    _check_utf8(raw)
    topic = raw.decode()
    if "+" in topic or "#" in topic:
        raise TransportError("PUBLISH topic holds wildcards")
    packet_id = 0
    if qos:
        packet_id = _packet_id(body, end, "PUBLISH")
        end += 2
    return topic, bytes(body[end:]), qos, packet_id


def decode_puback(body: "Body") -> int:
    if len(body) != 2:
        raise TransportError("PUBACK body must be 2 bytes, got " + str(len(body)))
    return _packet_id(body, 0, "PUBACK")


def decode_suback(body: "Body") -> "tuple[int, bytes]":
    """Return (packet id, return codes); 0x80 is a valid code meaning refused."""
    packet_id = _packet_id(body, 0, "SUBACK")
    codes = bytes(body[2:])
    if not codes:
        raise TransportError("SUBACK without return codes")
    for code in codes:
        if code not in (0, 1, 2, SUBACK_FAILURE):
            raise TransportError("SUBACK with invalid return code " + str(code))
    return packet_id, codes


def decode_pingresp(body: "Body") -> None:
    if body:
        raise TransportError("PINGRESP with a body")
