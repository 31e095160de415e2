"""Attestation evidence as EAT profile 1 (``docs/eat-profile.md``): claims, measurements, token.

The device states what it runs in a CWT claims-set signed as a COSE_Sign1 by
its root of trust's evidence key, with the certificate chain that names that
key. The builder never asks which kind of root of trust it holds: the backend
says which key signs (``evidence_key()``) and which certificates vouch for it
(``certificate_chain()``). Portable: CPython and MicroPython.

This module is not part of the trusted computing base. It can only lie about
what the verifier does not take on trust: the image measurement is bound by
the root of trust itself (DICE's Alias key is derived from it and its
certificate states it; a TPM quotes the registers :func:`measure_boot`
extended), and the other claims are judged against what provisioning proved
and the operator endorsed. Every input is checked, so a caller's mistake is a
specific :class:`InvalidField` here rather than a token the verifier refuses.
"""

import hashlib

from device_runtime.core import cbor, cose
from device_runtime.core.errors import InvalidField, RootOfTrustError, TooLarge

TYPE_CHECKING = False
if TYPE_CHECKING:
    from device_runtime.core.port_types import RootOfTrust

PROFILE = "tag:sevenfold.dev,2026:eat-profile:1"
MAX_TOKEN = 3072
"""Bytes: one token fits a 4,096-byte protocol message beside its envelope and a TPM quote."""

NONCE = 10
UEID = 256
OEMID = 258
HWMODEL = 259
UPTIME = 261
DBGSTAT = 263
EAT_PROFILE = 265
BOOTCOUNT = 267
BOOTSEED = 268
SWNAME = 270
SWVERSION = 271
MEASUREMENTS = 273
SECURITY_VERSION = -70000
ROOT_OF_TRUST = -70001
"""Claim keys: RFC 9711's, and two private ones (below -65536) it has no claim for."""

UEID_RAND = 0x01
VERSION_SCHEME_SEMVER = 16384
CONTENT_TYPE_CBOR = 60
IMAGE = "image"
CONFIG = "config"
IMAGE_REGISTER = 0
CONFIG_REGISTER = 1
"""Measurement registers :func:`measure_boot` extends (a TPM's PCRs 8 and 9)."""

DIGEST_SIZE = 32
NONCE_SIZE = 32
BOOTSEED_SIZE = 32
OEMID_SIZE = 3
DBGSTAT_MAX = 4
MAX_SWNAME = 64
MAX_SWVERSION = 32
MAX_HWMODEL = 64
MAX_DEVICE_ID = 64
UINT32_MAX = 0xFFFFFFFF
UINT64_MAX = 0xFFFFFFFFFFFFFFFF
POINT_SIZE = 65


def _bytes(value: object, size: int, what: str) -> bytes:
    if not isinstance(value, (bytes, bytearray)) or len(value) != size:
        raise InvalidField(what + " must be " + str(size) + " bytes")
    return bytes(value)


def _text(value: object, limit: int, what: str) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= limit:
        raise InvalidField(what + " must be a str of 1 to " + str(limit) + " characters")
    return value


def _uint(value: object, limit: int, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= limit:
        raise InvalidField(what + " must be an int in [0, " + str(limit) + "]")
    return value


def ueid(deviceid_point: bytes) -> bytes:
    """The device's UEID: type RAND (0x01) then SHA-256 of its DeviceID public key.

    Derived from the key rather than drawn and stored, so it needs no state and
    the verifier can recompute it from the DeviceID certificate.
    """
    point = _bytes(deviceid_point, POINT_SIZE, "the DeviceID public key")
    if point[0] != 4:
        raise InvalidField("the DeviceID public key must be an uncompressed SEC1 point")
    return bytes([UEID_RAND]) + hashlib.sha256(point).digest()


def _measurement(component: str, digest: object) -> "list[object]":
    content = cbor.dumps([component, _bytes(digest, DIGEST_SIZE, component + " digest")])
    return [CONTENT_TYPE_CBOR, content]


def measure_boot(rot: "RootOfTrust", image_digest: bytes, config_digest: bytes) -> None:
    """Extend register 0 with the image digest and register 1 with the configuration's.

    Call it once per boot, right after the root of trust is opened and before
    anything else extends a register: a TPM verifier recomputes each register
    as ``SHA-256(0^32 || digest)``, so a register extended with anything else
    first can never match the token's measurements. A register that already
    holds exactly that value (the agent restarted within one boot of a TPM) is
    left as it is; one holding any other value is refused.
    """
    wanted = (
        (IMAGE_REGISTER, _bytes(image_digest, DIGEST_SIZE, "image digest")),
        (CONFIG_REGISTER, _bytes(config_digest, DIGEST_SIZE, "config digest")),
    )
    zero = bytes(DIGEST_SIZE)
    for index, digest in wanted:
        current = rot.measurement(index)
        if current == hashlib.sha256(zero + digest).digest():
            continue
        if current != zero:
            raise RootOfTrustError(
                "measurement register "
                + str(index)
                + " was extended with something else since boot"
            )
        rot.extend(index, digest)


def token(
    rot: "RootOfTrust",
    *,
    nonce: bytes,
    deviceid_certificate: bytes,
    device_id: str,
    hwmodel: str,
    swname: str,
    swversion: str,
    security_version: int,
    oemid: bytes,
    dbgstat: int,
    bootcount: int,
    bootseed: bytes,
    uptime: int,
    image_digest: bytes,
    config_digest: bytes,
) -> bytes:
    """The tagged COSE_Sign1 of EAT profile 1, signed by ``rot.evidence_key()``.

    *hwmodel* is the hardware model name as provisioned (the claim is its
    SHA-256); *deviceid_certificate* is the DER certificate the factory issued,
    last in the chain. Raises :class:`InvalidField` for an input out of the
    profile's range and :class:`TooLarge` for a token over :data:`MAX_TOKEN`.
    """
    claims = {
        NONCE: _bytes(nonce, NONCE_SIZE, "nonce"),
        OEMID: _bytes(oemid, OEMID_SIZE, "oemid"),
        HWMODEL: hashlib.sha256(_text(hwmodel, MAX_HWMODEL, "hwmodel").encode()).digest(),
        UPTIME: _uint(uptime, UINT64_MAX, "uptime"),
        DBGSTAT: _uint(dbgstat, DBGSTAT_MAX, "dbgstat"),
        EAT_PROFILE: PROFILE,
        BOOTCOUNT: _uint(bootcount, UINT32_MAX, "bootcount"),
        BOOTSEED: _bytes(bootseed, BOOTSEED_SIZE, "bootseed"),
        SWNAME: _text(swname, MAX_SWNAME, "swname"),
        SWVERSION: [_text(swversion, MAX_SWVERSION, "swversion"), VERSION_SCHEME_SEMVER],
        MEASUREMENTS: [_measurement(IMAGE, image_digest), _measurement(CONFIG, config_digest)],
        SECURITY_VERSION: _uint(security_version, UINT32_MAX, "security_version"),
    }
    device_id = _text(device_id, MAX_DEVICE_ID, "device_id")
    if not isinstance(deviceid_certificate, (bytes, bytearray)) or not deviceid_certificate:
        raise InvalidField("the DeviceID certificate must be DER bytes")
    if len(deviceid_certificate) > MAX_TOKEN:
        raise TooLarge("the DeviceID certificate alone is over the token limit")
    # Only now is the root of trust asked anything: bad input never reaches a signing key.
    claims[UEID] = ueid(rot.identity_key().public_key())
    claims[ROOT_OF_TRUST] = rot.kind
    chain = rot.certificate_chain(bytes(deviceid_certificate), device_id)
    payload = cbor.dumps(claims)
    claims = {}  # the map's objects are garbage once encoded: a small heap needs them back
    signed = cose.sign(rot.evidence_key(), payload, {cose.X5CHAIN: chain})
    if len(signed) > MAX_TOKEN:
        raise TooLarge(
            "the token is " + str(len(signed)) + " bytes, over the " + str(MAX_TOKEN) + " limit"
        )
    return signed
