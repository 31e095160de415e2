"""Decoding a device's evidence (EAT profile 1, ``docs/eat-profile.md``) into checked values.

Nothing here trusts the token: it only establishes that the bytes have exactly
the shape the profile allows, so that the appraisal (``appraisal.py``) can
compare values instead of guarding every access. The signature is *not*
checked here, because the key that signed it is only known to be the device's
once the appraisal has judged the certificate chain.

Every limit is applied before the part it bounds is decoded: the token's size
first, then a nesting depth and an item budget for each CBOR layer (the COSE
envelope, its protected header, the claims, each measurement), chosen from the
profile's exact shape: six levels in all, counted through the byte-string
wrapping, and :data:`CLAIMS_ITEMS` data items in the claims. Every way a token
can be wrong is one :class:`EvidenceError`, whose ``code`` says which kind of
wrong and whose reason names the claim or the offset.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm

from device_runtime.core import cbor, cose
from device_runtime.core.errors import DecodeError, SevenfoldError, TooLarge
from device_runtime.core.evidence import (
    BOOTCOUNT,
    BOOTSEED,
    CONFIG,
    CONTENT_TYPE_CBOR,
    DBGSTAT,
    DBGSTAT_MAX,
    DIGEST_SIZE,
    EAT_PROFILE,
    HWMODEL,
    IMAGE,
    MAX_SWNAME,
    MAX_SWVERSION,
    MAX_TOKEN,
    MEASUREMENTS,
    NONCE,
    NONCE_SIZE,
    OEMID,
    OEMID_SIZE,
    ROOT_OF_TRUST,
    SECURITY_VERSION,
    SWNAME,
    SWVERSION,
    UEID,
    UEID_RAND,
    UPTIME,
    VERSION_SCHEME_SEMVER,
)
from device_runtime.core.protocol import ROOTS_OF_TRUST

DECODED_CACHE = 1024
"""Tokens whose decoding is kept: enough for a batch's evidence between peek and appraisal."""
MAX_CERTIFICATES = 3
MAX_CERTIFICATE = 1200
UEID_SIZE = 1 + DIGEST_SIZE
MAX_PROFILE = 64
UINT32_MAX = 0xFFFFFFFF
COMPONENTS = (IMAGE, CONFIG)
"""The measurements, in the order the profile fixes."""

CLAIM_NAMES = {
    NONCE: "eat_nonce",
    UEID: "ueid",
    OEMID: "oemid",
    HWMODEL: "hwmodel",
    UPTIME: "uptime",
    DBGSTAT: "dbgstat",
    EAT_PROFILE: "eat_profile",
    BOOTCOUNT: "bootcount",
    BOOTSEED: "bootseed",
    SWNAME: "swname",
    SWVERSION: "swversion",
    MEASUREMENTS: "measurements",
    SECURITY_VERSION: "sevenfold-svn",
    ROOT_OF_TRUST: "sevenfold-rot",
}

# Per-layer limits (cbor.loads counts each layer's top item). A valid token needs:
# envelope  tag, array, its 4 members, x5chain's key and array, 1 to 3 certificates: 9 to 11
# protected the map and its one entry: 3
# claims    the map, 14 entries (28), swversion's 2, measurements' 2, each measurement's 2: 37
# content   the array and its 2 members: 3, once per measurement
# The budgets leave room for a few extra entries, so that one unknown header or claim is
# reported as such rather than as a size; more than that is too large. Depth: the envelope
# 4, the claims 3 from inside the envelope's array (at 2), a measurement's content 1 = 6.
ENVELOPE_DEPTH = 4
ENVELOPE_ITEMS = 16
PROTECTED_DEPTH = 2
"""The map and one array in it: deep enough to see a crit header and refuse it by name."""
PROTECTED_ITEMS = 7
CLAIMS_DEPTH = 3
CLAIMS_ITEMS = 48
CONTENT_ITEMS = 3


class EvidenceError(SevenfoldError):
    """A token that is not evidence of profile 1; ``code`` is one of :data:`CODES`."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code


CODES = ("too-large", "bad-cbor", "bad-cose", "bad-alg", "bad-header", "bad-x5chain", "bad-claim")
"""too-large: over a size, depth or item limit; bad-cbor: not well-formed CBOR of the subset;
bad-cose: not a tagged, attached COSE_Sign1 with a 64-byte signature; bad-alg: the algorithm
is not ES256 in the protected header alone; bad-header: any other header (crit included);
bad-x5chain: the certificate chain; bad-claim: a claim missing, unknown, mistyped or out of
range."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Claims:
    """The claims of one token, each of the type and size the profile gives it."""

    nonce: bytes
    ueid: bytes
    oemid: bytes
    hwmodel: bytes
    uptime: int
    dbgstat: int
    profile: str
    bootcount: int
    bootseed: bytes
    swname: str
    swversion: str
    swversion_scheme: int
    image_digest: bytes
    config_digest: bytes
    security_version: int
    rot: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Evidence:
    """A decoded token: the claims, the chain (leaf first) and what the signature covers."""

    claims: Claims
    chain: tuple[x509.Certificate, ...]
    to_be_signed: bytes
    signature: bytes


@dataclass(frozen=True, slots=True)
class _Envelope:
    protected: bytes
    chain: tuple[bytes, ...]
    payload: bytes
    signature: bytes


def _load(data: bytes, *, depth: int, items: int, what: str) -> object:
    try:
        return cbor.loads(data, max_depth=depth, max_items=items, max_total_items=items)
    except TooLarge as exc:
        raise EvidenceError("too-large", f"{what}: {exc.reason}") from None
    except DecodeError as exc:
        raise EvidenceError("bad-cbor", f"{what}: {exc.reason}") from None


def _structure(token: bytes) -> tuple[_Envelope, Claims]:
    if not isinstance(token, bytes):
        raise EvidenceError("bad-cose", "evidence must be bytes")
    return _parsed_structure(token)


@lru_cache(maxsize=DECODED_CACHE)
def _parsed_structure(token: bytes) -> tuple[_Envelope, Claims]:
    """Cached by the token's bytes (both parts are immutable; a refusal is not cached)."""
    envelope = _envelope(token)
    return envelope, _claims(envelope.payload)


def _envelope(token: bytes) -> _Envelope:
    if not isinstance(token, bytes):
        raise EvidenceError("bad-cose", "evidence must be bytes")
    if len(token) > MAX_TOKEN:
        raise EvidenceError("too-large", f"evidence is {len(token)} bytes, limit {MAX_TOKEN}")
    item = _load(token, depth=ENVELOPE_DEPTH, items=ENVELOPE_ITEMS, what="evidence")
    if not isinstance(item, cbor.Tag) or item.tag != cose.COSE_SIGN1_TAG:
        raise EvidenceError("bad-cose", "evidence is not a tagged COSE_Sign1 (tag 18)")
    parts = item.value
    if not isinstance(parts, list) or len(parts) != 4:
        raise EvidenceError("bad-cose", "a COSE_Sign1 is an array of 4")
    protected, unprotected, payload, signature = parts
    if not isinstance(protected, bytes):
        raise EvidenceError("bad-cose", "protected header is not a byte string")
    if payload is None:
        raise EvidenceError("bad-cose", "detached payload: the claims must be in the token")
    if not isinstance(payload, bytes):
        raise EvidenceError("bad-cose", "payload is not a byte string")
    if not isinstance(signature, bytes) or len(signature) != cose.SIGNATURE_SIZE:
        raise EvidenceError("bad-cose", "signature is not 64 bytes (ES256 r || s)")
    _check_protected(protected)
    return _Envelope(protected, _chain_bytes(unprotected), payload, signature)


def _check_protected(protected: bytes) -> None:
    headers = (
        _load(protected, depth=PROTECTED_DEPTH, items=PROTECTED_ITEMS, what="protected header")
        if protected
        else {}
    )
    if not isinstance(headers, dict):
        raise EvidenceError("bad-cose", "protected header is not a map")
    if cose.CRIT in headers:
        raise EvidenceError("bad-header", "critical headers (crit, label 2) are refused")
    if cose.ALG not in headers:
        raise EvidenceError("bad-alg", "no alg in the protected header")
    alg = headers[cose.ALG]
    if alg != cose.ES256:
        raise EvidenceError("bad-alg", f"alg {alg!r:.32} is not ES256 (-7)")
    if len(headers) != 1:
        extra = sorted(repr(label) for label in headers if label != cose.ALG)
        raise EvidenceError(
            "bad-header", "protected header holds more than alg: " + ", ".join(extra)
        )


def _chain_bytes(unprotected: object) -> tuple[bytes, ...]:
    if not isinstance(unprotected, dict):
        raise EvidenceError("bad-cose", "unprotected header is not a map")
    if cose.ALG in unprotected:
        raise EvidenceError("bad-alg", "alg in the unprotected header, where it is not signed")
    if cose.CRIT in unprotected:
        raise EvidenceError("bad-header", "critical headers (crit, label 2) are refused")
    extra = sorted(repr(label) for label in unprotected if label != cose.X5CHAIN)
    if extra:
        raise EvidenceError(
            "bad-header", "unprotected header holds more than x5chain: " + ", ".join(extra)
        )
    chain = unprotected.get(cose.X5CHAIN)
    if not isinstance(chain, list):
        raise EvidenceError("bad-x5chain", "x5chain (label 33) is missing or not an array")
    if not 1 <= len(chain) <= MAX_CERTIFICATES:
        raise EvidenceError(
            "bad-x5chain", f"x5chain holds {len(chain)} certificates, not 1 to {MAX_CERTIFICATES}"
        )
    for index, der in enumerate(chain):
        if not isinstance(der, bytes):
            raise EvidenceError("bad-x5chain", f"x5chain[{index}] is not a byte string")
        if len(der) > MAX_CERTIFICATE:
            raise EvidenceError(
                "bad-x5chain", f"x5chain[{index}] is {len(der)} bytes, limit {MAX_CERTIFICATE}"
            )
    return tuple(chain)


@lru_cache(maxsize=4096)
def certificate(der: bytes) -> x509.Certificate:
    """The certificate *der* encodes, every part the appraisal reads parsed now.

    cryptography parses names, validity, extensions and the key lazily, on first
    access; touching them here means a malformed part is refused as a decoding
    fault, not met later as an exception in the middle of the judgement. Cached,
    since a device presents the same bytes every time: the key is immutable DER
    and the result an immutable object. Raises ``ValueError``, ``InvalidVersion``,
    ``DuplicateExtension`` or ``UnsupportedAlgorithm`` for anything else.
    """
    parsed = x509.load_der_x509_certificate(der)
    _parts = (parsed.issuer, parsed.subject, parsed.extensions, parsed.public_key())
    _validity = (parsed.not_valid_before_utc, parsed.not_valid_after_utc)
    return parsed


def _certificates(chain: tuple[bytes, ...]) -> tuple[x509.Certificate, ...]:
    parsed = []
    for index, der in enumerate(chain):
        try:
            parsed.append(certificate(der))
        except (
            ValueError,
            x509.InvalidVersion,
            x509.DuplicateExtension,
            UnsupportedAlgorithm,
        ) as exc:
            raise EvidenceError(
                "bad-x5chain", f"x5chain[{index}] is not a DER X.509 certificate: {exc}"
            ) from None
    return tuple(parsed)


def _claim(claims: dict[object, object], key: int) -> object:
    if key not in claims:
        raise EvidenceError("bad-claim", f"claim {CLAIM_NAMES[key]} ({key}) is missing")
    return claims[key]


def _bstr(claims: dict[object, object], key: int, size: int) -> bytes:
    value = _claim(claims, key)
    if not isinstance(value, bytes) or len(value) != size:
        raise EvidenceError("bad-claim", f"claim {CLAIM_NAMES[key]} ({key}) is not {size} bytes")
    return value


def _uint(claims: dict[object, object], key: int, limit: int) -> int:
    value = _claim(claims, key)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= limit:
        raise EvidenceError(
            "bad-claim", f"claim {CLAIM_NAMES[key]} ({key}) is not an unsigned int up to {limit}"
        )
    return value


def _tstr(value: object, limit: int, what: str) -> str:
    if not isinstance(value, str) or len(value.encode("utf-8")) > limit:
        raise EvidenceError("bad-claim", f"{what} is not a text string of at most {limit} bytes")
    return value


def _measurement(value: object, index: int) -> bytes:
    what = f"claim measurements[{index}]"
    if not isinstance(value, list) or len(value) != 2 or value[0] != CONTENT_TYPE_CBOR:
        raise EvidenceError("bad-claim", f"{what} is not [60, bstr .cbor [component, digest]]")
    if not isinstance(value[1], bytes):
        raise EvidenceError("bad-claim", f"{what} content is not a byte string")
    content = _load(value[1], depth=1, items=CONTENT_ITEMS, what=what)
    if not isinstance(content, list) or len(content) != 2:
        raise EvidenceError("bad-claim", f"{what} content is not [component, digest]")
    component, digest = content
    if component != COMPONENTS[index]:
        raise EvidenceError(
            "bad-claim", f"{what} names {component!r:.32}, not {COMPONENTS[index]!r}"
        )
    if not isinstance(digest, bytes) or len(digest) != DIGEST_SIZE:
        raise EvidenceError("bad-claim", f"{what} digest is not 32 bytes")
    return digest


def _claims(payload: bytes) -> Claims:
    claims = _load(payload, depth=CLAIMS_DEPTH, items=CLAIMS_ITEMS, what="claims")
    if not isinstance(claims, dict):
        raise EvidenceError("bad-claim", "the claims are not a map")
    unknown = sorted(repr(key)[:24] for key in claims if key not in CLAIM_NAMES)
    if unknown:
        raise EvidenceError("bad-claim", "claims this profile does not have: " + ", ".join(unknown))
    swversion = _claim(claims, SWVERSION)
    if not isinstance(swversion, list) or len(swversion) != 2:
        raise EvidenceError("bad-claim", f"claim swversion ({SWVERSION}) is not [version, scheme]")
    if swversion[1] != VERSION_SCHEME_SEMVER:
        raise EvidenceError("bad-claim", "claim swversion's scheme is not 16384 (semver)")
    measurements = _claim(claims, MEASUREMENTS)
    if not isinstance(measurements, list) or len(measurements) != len(COMPONENTS):
        raise EvidenceError(
            "bad-claim", f"claim measurements ({MEASUREMENTS}) is not [image, config]"
        )
    rot = _claim(claims, ROOT_OF_TRUST)
    if rot not in ROOTS_OF_TRUST:
        raise EvidenceError(
            "bad-claim", f"claim sevenfold-rot ({ROOT_OF_TRUST}) is not one of tpm, dice, software"
        )
    return Claims(
        nonce=_bstr(claims, NONCE, NONCE_SIZE),
        ueid=_bstr(claims, UEID, UEID_SIZE),
        oemid=_bstr(claims, OEMID, OEMID_SIZE),
        hwmodel=_bstr(claims, HWMODEL, DIGEST_SIZE),
        uptime=_uint(claims, UPTIME, cbor.UINT64_MAX),
        dbgstat=_uint(claims, DBGSTAT, DBGSTAT_MAX),
        profile=_tstr(_claim(claims, EAT_PROFILE), MAX_PROFILE, "claim eat_profile (265)"),
        bootcount=_uint(claims, BOOTCOUNT, UINT32_MAX),
        bootseed=_bstr(claims, BOOTSEED, DIGEST_SIZE),
        swname=_tstr(_claim(claims, SWNAME), MAX_SWNAME, "claim swname (270)"),
        swversion=_tstr(swversion[0], MAX_SWVERSION, "claim swversion's version"),
        swversion_scheme=VERSION_SCHEME_SEMVER,
        image_digest=_measurement(measurements[0], 0),
        config_digest=_measurement(measurements[1], 1),
        security_version=_uint(claims, SECURITY_VERSION, UINT32_MAX),
        rot=str(rot),
    )


def peek_nonce(token: bytes) -> bytes:
    """The token's ``eat_nonce``, from a structure check alone: the signature is NOT checked.

    For the server to find (and consume) the outstanding challenge before it
    appraises; the nonce means nothing until :func:`appraisal.appraise` has
    verified the token. Raises :class:`EvidenceError`. The structure is kept,
    so :func:`decode` of the same token does not parse it again.
    """
    return _structure(token)[1].nonce


def decode(token: bytes) -> Evidence:
    """Every part of the token checked for shape; raises :class:`EvidenceError`."""
    envelope, claims = _structure(token)
    return Evidence(
        claims=claims,
        chain=_certificates(envelope.chain),
        to_be_signed=cbor.dumps(["Signature1", envelope.protected, b"", envelope.payload]),
        signature=envelope.signature,
    )


def ueid_of(deviceid_key: bytes) -> bytes:
    """The ueid a device with this DeviceID key (SEC1 point) states: RAND type, then its SHA-256."""
    return bytes((UEID_RAND,)) + hashlib.sha256(deviceid_key).digest()
