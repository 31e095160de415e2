"""Signing MCUboot images on a build machine: what ``imgtool sign --pad-header`` writes.

The format's one definition is the device's verifier
(``device_runtime.core.signed_image``); this module packs the same constants
the other way. The layout is byte for byte what ``imgtool sign -k KEY
--pad-header -H 0x200 -v 1.2.3 -s 7`` writes, padding filled with 0xff (the
erased-flash value imgtool uses), except the signature: imgtool's ECDSA
nonces are random, ours are RFC 6979's, so that the same firmware, version
and key give the same image, as reproducible builds need. CPython only
(``cryptography``).
"""

from __future__ import annotations

import hashlib
import re
import struct

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from device_runtime.core import signed_image as fmt

PADDING = b"\xff"
"""What fills the header up to its size: erased flash, as imgtool's ``--pad-header``."""
VERSION = re.compile(r"(\d+)\.(\d+)\.(\d+)(?:\+(\d+))?")
VERSION_LIMITS = (0xFF, 0xFF, 0xFFFF, 0xFFFFFFFF)
"""major and minor are a byte each in the header, revision 16 bits, build 32."""


def parse_version(text: str) -> tuple[int, int, int, int]:
    """``MAJOR.MINOR.REVISION[+BUILD]`` as the header's four fields (imgtool's syntax)."""
    match = VERSION.fullmatch(text)
    if match is None:
        raise fmt.ImageError(f"version {text!r} is not MAJOR.MINOR.REVISION[+BUILD]")
    parts = tuple(int(group or 0) for group in match.groups())
    if any(part > limit for part, limit in zip(parts, VERSION_LIMITS, strict=True)):
        raise fmt.ImageError(f"version {text!r} does not fit the header (255.255.65535+4294967295)")
    return parts  # type: ignore[return-value]


def sign_image(
    payload: bytes,
    *,
    key: ec.EllipticCurvePrivateKey,
    version: str,
    security_counter: int,
    header_size: int = 0x200,
) -> bytes:
    """The signed image of *payload*: header and padding before it, TLVs after it.

    The payload does not leave room for the header (``--pad-header``). The
    signature is deterministic (RFC 6979), so equal inputs give equal bytes.
    """
    if not isinstance(key.curve, ec.SECP256R1):
        raise fmt.ImageError(f"the key is on {key.curve.name}, not P-256 (ECDSA_SIG is ES256 here)")
    if not 0 <= security_counter <= 0xFFFFFFFF:
        raise fmt.ImageError(
            f"security counter {security_counter} is not a 32-bit unsigned integer"
        )
    if not fmt.HEADER_SIZE <= header_size <= 0xFFFF:
        raise fmt.ImageError(f"header size {header_size} is not in [32, 65535]")
    protected = _area(
        fmt.PROTECTED_INFO_MAGIC, _tlv(fmt.SEC_CNT, struct.pack("<I", security_counter))
    )
    size = header_size + len(payload) + len(protected)
    if size > fmt.MAX_IMAGE_SIZE:
        raise fmt.ImageError(
            f"the image would be {size} bytes, over the {fmt.MAX_IMAGE_SIZE} limit"
        )
    header = struct.pack(
        fmt.HEADER_FORMAT,
        fmt.IMAGE_MAGIC,
        0,  # load_addr: run from flash
        header_size,
        len(protected),
        len(payload),
        0,  # flags
        *parse_version(version),
        0,
    )
    signed = header + PADDING * (header_size - fmt.HEADER_SIZE) + bytes(payload) + protected
    digest = hashlib.sha256(signed).digest()
    point = public_point(key.public_key())
    algorithm = ec.ECDSA(Prehashed(hashes.SHA256()), deterministic_signing=True)
    tlvs = (
        _tlv(fmt.SHA256, digest)
        + _tlv(fmt.KEYHASH, fmt.key_hash(point))
        + _tlv(fmt.ECDSA_SIG, key.sign(digest, algorithm))
    )
    return signed + _area(fmt.TLV_INFO_MAGIC, tlvs)


def public_point(key: ec.EllipticCurvePublicKey) -> bytes:
    """The 65-byte SEC1 point the device's verifier takes for a key (and hashes for KEYHASH)."""
    return key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def _tlv(kind: int, value: bytes) -> bytes:
    return struct.pack(fmt.TLV_FORMAT, kind, len(value)) + value


def _area(magic: int, tlvs: bytes) -> bytes:
    """A TLV area: its info (magic, and a size that counts the info itself), then the TLVs."""
    return struct.pack(fmt.TLV_FORMAT, magic, fmt.TLV_HEADER_SIZE + len(tlvs)) + tlvs
