"""The server's end of the device protocol: requests in, error answers out.

``device_runtime.core.protocol`` holds what both ends share (schemas, encoding,
decoding, limits); what only a server does lives here, outside the device's
trusted computing base: tying a request to the identity the broker proved and
to the plane it came on, salvaging the correlation id of a message too broken
to decode, and building error answers that always encode.
"""

from __future__ import annotations

from device_runtime.core import cbor, protocol
from device_runtime.core.errors import IdentityMismatch, ProtocolError, RetryLater, UnknownType


def decode_request(
    data: bytes, device_id: str, plane: str = protocol.APPLICATION_PLANE
) -> protocol.Envelope:
    """A request from *device_id*, the identity its certificate proves, received on *plane*."""
    envelope = protocol.decode(data, protocol.MAX_MESSAGE)
    if envelope.kind not in protocol.RESPONSES:
        raise UnknownType(repr(envelope.kind) + " is not a request")
    if protocol.PLANES[envelope.kind] != plane:
        raise UnknownType(repr(envelope.kind) + " is not a request on this topic")
    claimed = envelope.body.get("device_id")
    if claimed is not None and claimed != device_id:
        raise IdentityMismatch(
            "payload claims " + repr(claimed) + " but the certificate proves " + repr(device_id)
        )
    return envelope


def error_body(error: ProtocolError) -> dict[str, object]:
    """The body of an ``error`` answer to *error*, always encodable.

    The reason is cut to MAX_TEXT and its control characters are replaced,
    because it may quote what a peer sent and must pass the text-field rules.
    """
    reason = error.reason
    if len(reason) > protocol.MAX_TEXT:
        reason = reason[: protocol.MAX_TEXT - 3] + "..."
    reason = "".join("?" if protocol.is_control(ch) else ch for ch in reason)
    body: dict[str, object] = {"code": error.code, "reason": reason}
    if isinstance(error, RetryLater):
        body["retry_after"] = min(max(error.retry_after_ms, 0), protocol.MAX_RETRY_AFTER_MS)
    return body


def correlation_of(data: bytes) -> bytes | None:
    """Best effort: the correlation id of a rejected message, so the error can be routed."""
    if len(data) > protocol.MAX_MESSAGE:
        return None
    try:
        message = cbor.loads(data, protocol.MAX_DEPTH, protocol.MAX_ITEMS, protocol.MAX_TOTAL_ITEMS)
    except ProtocolError:
        return None
    if not isinstance(message, dict):
        return None
    for key, value in message.items():
        # Compare text keys only: a byte-string key never names a field.
        if (
            isinstance(key, str)
            and key == "id"
            and isinstance(value, bytes)
            and len(value) == protocol.CORRELATION_BYTES
        ):
            return value
    return None
