"""The one exception tree of the device core, shared with the server.

Every failure a peer can cause maps to exactly one class, and each class carries
a stable wire ``code`` so that the device, the server and the logs name the same
reason. Runs unchanged under MicroPython (no dataclasses, no typing at run time).
"""


class SevenfoldError(Exception):
    """Base of every error Sevenfold raises on purpose."""

    code = "error"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def explain(self) -> str:
        """One line fit for a log or a terminal: the stable code, then the reason."""
        return self.code + ": " + self.reason


class ProtocolError(SevenfoldError):
    """A message from a peer broke the protocol; the peer gets this code back."""

    code = "protocol"


class DecodeError(ProtocolError):
    """The bytes are not well-formed CBOR of the subset the protocol uses."""

    code = "bad-cbor"


class TooLarge(ProtocolError):
    """The message, or a part of it, is over a size limit."""

    code = "too-large"


class UnsupportedVersion(ProtocolError):
    """The envelope names a protocol version this side does not speak."""

    code = "bad-version"


class UnknownType(ProtocolError):
    """The envelope names a message type this side does not know."""

    code = "unknown-type"


class InvalidField(ProtocolError):
    """A field is missing, of the wrong type, or out of range."""

    code = "bad-field"


class IdentityMismatch(ProtocolError):
    """A payload claims an identity other than the one its certificate proves."""

    code = "identity-mismatch"


class NotEnrolled(ProtocolError):
    """The device asked for something that needs enrollment first."""

    code = "not-enrolled"


class Replayed(ProtocolError):
    """A request repeats or precedes one already accepted: a replayed or reordered
    sequence number, or a boot count lower than one the server has seen (a cloned
    or rolled-back device)."""

    code = "replayed"


class InternalError(ProtocolError):
    """The server failed in a way that is not the device's fault; try again later."""

    code = "internal"


class RetryLater(ProtocolError):
    """Not refused, not served: send the same request again after ``retry_after_ms``.

    The device is expected to wait at least that long, plus a random share of it
    so that a fleet told to wait at once does not come back at once.
    """

    code = "retry-later"

    def __init__(self, reason: str, retry_after_ms: int = 1000) -> None:
        super().__init__(reason)
        self.retry_after_ms = retry_after_ms


class Busy(RetryLater):
    """The server is overloaded and did not look at the request."""

    code = "busy"


class RateLimited(RetryLater):
    """This device sent more requests than its share; the others are unaffected."""

    code = "rate-limited"


class Unavailable(RetryLater):
    """The server cannot reach its storage just now; nothing was recorded."""

    code = "unavailable"


class Contraindicated(SevenfoldError):
    """The verifier judged this device's evidence untrustworthy: no fleet certificate."""

    code = "contraindicated"


class CryptoError(SevenfoldError):
    """A signature, key or certificate did not verify or could not be used."""

    code = "crypto"


class ImageError(SevenfoldError):
    """A firmware image is malformed, over a limit, or not signed by the expected key.

    The reason names what is wrong and, where the image's own bytes are at
    fault, the offset at which the fault lies.
    """

    code = "bad-image"


class RootOfTrustError(SevenfoldError):
    """The root of trust is absent, locked out or refused, or a sealed blob is not its own."""

    code = "root-of-trust"


class StorageError(SevenfoldError):
    """Durable state could not be read or written."""

    code = "storage"


class TransportError(SevenfoldError):
    """The link to the broker failed or the peer broke the transport protocol."""

    code = "transport"


class ConfigError(SevenfoldError):
    """This side was set up wrongly (an option, a file, a directory): no peer is at fault,
    so it is never sent over the wire."""

    code = "config"


WIRE_ERRORS = (
    DecodeError,
    TooLarge,
    UnsupportedVersion,
    UnknownType,
    InvalidField,
    IdentityMismatch,
    NotEnrolled,
    Replayed,
    InternalError,
)
RETRY_ERRORS = (Busy, RateLimited, Unavailable, RetryLater)


def from_wire(code: str, reason: str, retry_after_ms: object = None) -> ProtocolError:
    """Rebuild the error a peer reported, so callers can catch it by class."""
    for cls in WIRE_ERRORS:
        if cls.code == code:
            return cls(reason)
    for retry in RETRY_ERRORS:
        if retry.code == code:
            wait = retry_after_ms if isinstance(retry_after_ms, int) else 1000
            return retry(reason, wait)
    return ProtocolError(reason)
