"""COSE_Sign1 (RFC 9052) with ES256: what evidence and signed results travel in.

One implementation for device and server, on CPython and MicroPython. A
message is ``18([protected, unprotected, payload, signature])``: *protected*
is the byte string of a CBOR map holding the algorithm (label 1) and nothing
the verifier does not understand, the signature is ES256 (alg -7) as raw
``r || s`` over the Sig_structure ``["Signature1", protected, h'', payload]``.
Signing is done by a root-of-trust key (``Key.sign``), so the private key
never reaches this module; verifying takes the crypto port's
``verify_es256``. ``verify`` only raises: every rejection says what is wrong.

Only what this project sends is accepted: ES256, an attached payload, no
``crit`` header, no external AAD, and header labels that are small integers.
"""

from device_runtime.core import cbor
from device_runtime.core.errors import CryptoError, DecodeError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from device_runtime.core.port_types import Key

COSE_SIGN1_TAG = 18
ALG = 1
CRIT = 2
KID = 4
X5CHAIN = 33
ES256 = -7
SIGNATURE_SIZE = 64
MAX_HEADER_LABEL = 65535
"""Labels above this (and text labels) are private use: refused, as nothing here knows them."""


def _headers(value: object, where: str) -> "dict[int, object]":
    if not isinstance(value, dict):
        raise DecodeError(where + " headers are not a map")
    for label in value:
        if not isinstance(label, int) or isinstance(label, bool):
            raise DecodeError(where + " header label " + repr(label)[:32] + " is not an integer")
        if not -MAX_HEADER_LABEL <= label <= MAX_HEADER_LABEL:
            raise DecodeError(where + " header label " + str(label) + " is not one this knows")
    return value


def _to_be_signed(protected: bytes, payload: bytes) -> bytes:
    return cbor.dumps(["Signature1", protected, b"", payload])


def sign(key: "Key", payload: bytes, unprotected: "dict[int, object] | None" = None) -> bytes:
    """A tagged COSE_Sign1 of *payload* by *key* (ES256), with *unprotected* headers."""
    if not isinstance(payload, (bytes, bytearray)):
        raise CryptoError("a COSE payload is bytes")
    headers = _headers({} if unprotected is None else unprotected, "unprotected")
    if ALG in headers or CRIT in headers:
        raise CryptoError("alg and crit belong in the protected headers")
    protected = cbor.dumps({ALG: ES256})
    signature = key.sign(_to_be_signed(protected, bytes(payload)))
    if len(signature) != SIGNATURE_SIZE:
        raise CryptoError("the key's ES256 signature is not 64 bytes")
    return cbor.dumps(cbor.Tag(COSE_SIGN1_TAG, [protected, headers, bytes(payload), signature]))


def verify(
    message: "bytes | bytearray | memoryview",
    public_key: bytes,
    verify_es256: object,
    max_total_items: int = cbor.DEFAULT_MAX_TOTAL_ITEMS,
) -> "tuple[dict[int, object], dict[int, object], bytes]":
    """``(protected, unprotected, payload)`` of a COSE_Sign1 that *public_key* signed.

    *verify_es256* is the crypto port's ``verify_es256(public_key, message,
    signature)``, which raises :class:`CryptoError` on a bad signature.
    Raises :class:`DecodeError` for a message that is not a COSE_Sign1 this
    accepts, :class:`CryptoError` for a signature that does not verify.
    """
    item = cbor.loads(message, max_total_items=max_total_items)
    if not isinstance(item, cbor.Tag) or item.tag != COSE_SIGN1_TAG:
        raise DecodeError("not a COSE_Sign1 (tag 18)")
    parts = item.value
    if not isinstance(parts, list) or len(parts) != 4:
        raise DecodeError("a COSE_Sign1 is an array of 4")
    protected, unprotected, payload, signature = parts
    if not isinstance(protected, bytes):
        raise DecodeError("protected headers are not a byte string")
    if not isinstance(payload, bytes):
        raise DecodeError("the payload is not attached as a byte string")
    if not isinstance(signature, bytes) or len(signature) != SIGNATURE_SIZE:
        raise DecodeError("the signature is not 64 bytes (ES256 r || s)")
    headers = _headers(cbor.loads(protected) if protected else {}, "protected")
    if headers.get(ALG) != ES256:
        raise DecodeError("the protected algorithm is not ES256 (-7)")
    if CRIT in headers:
        raise DecodeError("critical headers are not supported")
    unprotected_headers = _headers(unprotected, "unprotected")
    if ALG in unprotected_headers or CRIT in unprotected_headers:
        raise DecodeError("alg or crit in the unprotected headers")
    verify_es256(public_key, _to_be_signed(protected, payload), signature)  # type: ignore[operator]
    return headers, unprotected_headers, payload
