"""Signed images and the ways they go wrong, shared by the CPython and MicroPython tests.

Each case of :func:`bad_images` is a valid image changed in one way, with the
words its refusal must contain: the CPython tests check the reason, and the
MicroPython test checks that the device gives the same reason for the same bytes.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    Prehashed,
    decode_dss_signature,
    encode_dss_signature,
)

from device_runtime.core import p256_encoding
from device_runtime.core import signed_image as fmt
from device_runtime.core.signed_image import ImageError
from device_runtime.image_signer import public_point, sign_image
from device_runtime.ports.cpython.crypto import verify_ecdsa_der

KEY = ec.derive_private_key(0x5EF0_1D, ec.SECP256R1())
OTHER_KEY = ec.derive_private_key(0xB065, ec.SECP256R1())
POINT = public_point(KEY.public_key())
PAYLOAD = bytes(range(256)) * 8
"""2 KiB of firmware: header at 0, body at 0x200, protected TLVs at 0xa00, TLV area at 0xa0c."""
PROTECTED_AT = 0x200 + len(PAYLOAD)
TLVS_AT = PROTECTED_AT + 12


def image(payload: bytes = PAYLOAD, key: ec.EllipticCurvePrivateKey = KEY) -> bytes:
    return sign_image(payload, key=key, version="1.2.3", security_counter=7)


def reader(data: bytes, step: int | None = None) -> Callable[[int], memoryview]:
    """``read(n)`` over *data* without copies; at most *step* bytes a call when given."""
    view = memoryview(data)
    position = 0

    def read(n: int) -> memoryview:
        nonlocal position
        part = view[position : position + min(n, step or n)]
        position += len(part)
        return part

    return read


def outcome(data: bytes, point: bytes = POINT, **options: int) -> str:
    """``ok`` when *data* verifies against *point*, else the reason it is refused."""
    try:
        fmt.verify(reader(data), point, verify_ecdsa_der, **options)
    except ImageError as exc:
        return exc.reason
    return "ok"


def patched(data: bytes, offset: int, layout: str, *values: int) -> bytes:
    """*data* with ``struct.pack(layout, *values)`` written at *offset*."""
    changed = bytearray(data)
    struct.pack_into(layout, changed, offset, *values)
    return bytes(changed)


def finished(
    region: bytes,
    entries: list[tuple[int, bytes]] | None = None,
    key: ec.EllipticCurvePrivateKey = KEY,
) -> bytes:
    """*region* (header to protected TLVs) and a TLV area of *entries*, by default the
    SHA256, KEYHASH and ECDSA_SIG by *key* that make it a valid image."""
    digest = hashlib.sha256(region).digest()
    if entries is None:
        signature = key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))
        keyhash = fmt.key_hash(public_point(key.public_key()))
        entries = [(fmt.SHA256, digest), (fmt.KEYHASH, keyhash), (fmt.ECDSA_SIG, signature)]
    body = b"".join(
        struct.pack(fmt.TLV_FORMAT, kind, len(value)) + value for kind, value in entries
    )
    return region + struct.pack(fmt.TLV_FORMAT, fmt.TLV_INFO_MAGIC, 4 + len(body)) + body


def _region(data: bytes) -> bytes:
    return data[:TLVS_AT]


def bad_images() -> dict[str, tuple[bytes, str]]:
    """Every way the issue names an image going wrong, and more: name -> (bytes, reason words)."""
    good = image()
    digest = hashlib.sha256(_region(good)).digest()
    keyhash = fmt.key_hash(POINT)
    sig_at, signature = fmt.inspect(reader(good)).tlvs[fmt.ECDSA_SIG]
    no_protected = patched(good[:PROTECTED_AT], 10, "<H", 0)
    return {
        "bad-magic": (patched(good, 0, "<I", 0x96F3B83E), "bad magic 0x96f3b83e at offset 0"),
        "empty": (b"", "header truncated at offset 0"),
        "short-header": (good[:20], "header truncated at offset 20"),
        "header-under-32": (patched(good, 8, "<H", 16), "header size 16 at offset 8"),
        "encrypted": (patched(good, 16, "<I", 0x4), "flags 0x4 at offset 16 ask for what is not"),
        "non-bootable": (
            finished(patched(_region(good), 16, "<I", 0x11)),
            "flags 0x11 at offset 16: NON_BOOTABLE, which MCUboot never boots",
        ),
        "ram-load": (
            finished(patched(_region(good), 16, "<I", 0x20)),
            "flags 0x20 at offset 16 ask for what is not supported (only PIC)",
        ),
        "rom-fixed": (
            finished(patched(_region(good), 16, "<I", 0x100)),
            "flags 0x100 at offset 16",
        ),
        "truncated-body": (good[:0x300], "image body of 2048 bytes truncated at offset 768"),
        "body-size-lies-long": (
            patched(good, 12, "<I", len(PAYLOAD) + 1000),
            "image body of 3048 bytes truncated at offset",
        ),
        "body-size-lies-short": (
            patched(good, 12, "<I", len(PAYLOAD) - 64),
            "12 bytes of protected TLVs, offset 2496 has none",
        ),
        "header-size-lies": (patched(good, 8, "<H", 0x100), "offset 2304 has none"),
        "body-past-limit": (
            patched(good, 12, "<I", 0xFFFFFFF0),
            "run past the 268435456-byte limit",
        ),
        "protected-size-lies": (
            patched(good, 10, "<H", 16),
            "protected TLV area at offset 2560 is 12 bytes, the header says 16",
        ),
        "protected-size-hidden": (patched(good, 10, "<H", 0), "is 12 bytes, the header says 0"),
        "protected-promised": (
            finished(patched(good[:PROTECTED_AT], 10, "<H", 12)),
            "the header says 12 bytes of protected TLVs, offset 2560 has none",
        ),
        "protected-under-info": (
            patched(patched(good, 10, "<H", 2), PROTECTED_AT + 2, "<H", 2),
            "protected TLV area at offset 2560 is under its 4-byte info",
        ),
        "protected-overlaps": (
            finished(patched(_region(good), PROTECTED_AT + 6, "<H", 8)),
            "TLV at offset 2564 (8 bytes) runs past the end of the protected"
            " TLV area at offset 2572",
        ),
        "tlv-runs-past-end": (
            patched(good, TLVS_AT + 2, "<H", len(good) - TLVS_AT - 1),
            "runs past the end of the TLV area",
        ),
        "tlv-length-past-end": (
            patched(good, sig_at + 2, "<H", 0xFF00),
            f"TLV at offset {sig_at} (65280 bytes) runs past",
        ),
        "tlv-header-past-end": (
            _with_trailing_bytes(finished(_region(good), [(fmt.SHA256, digest)])),
            "TLV at offset 2612 (4 bytes) runs past the end of the TLV area at offset 2614",
        ),
        "tlv-area-cut": (good[:-5], "TLV truncated at offset"),
        "no-tlv-area": (good[:TLVS_AT], "TLV info truncated at offset 2572"),
        "bad-tlv-magic": (
            patched(good, TLVS_AT, "<H", 0x1234),
            "no TLV area at offset 2572 (magic 0x1234, not 0x6907)",
        ),
        "unknown-tlv": (
            finished(_region(good), [(0x02, bytes(91))]),
            "TLV 0x02 at offset 2576 is not one the TLV area may hold",
        ),
        "hash-in-protected": (
            finished(
                patched(patched(good[: PROTECTED_AT + 4], 10, "<H", 40), PROTECTED_AT + 2, "<H", 40)
                + struct.pack("<HH", fmt.SHA256, 32)
                + digest
            ),
            "TLV 0x10 at offset 2564 is not one the protected TLV area may hold",
        ),
        "counter-unprotected": (
            finished(no_protected, [(fmt.SEC_CNT, b"\x07\x00\x00\x00")]),
            "TLV 0x50 at offset 2564 is not one the TLV area may hold",
        ),
        "oversized-signature": (
            finished(_region(good), [(fmt.ECDSA_SIG, bytes(100))]),
            "TLV 0x22 at offset 2576 is 100 bytes, not 8 to 72",
        ),
        "short-hash": (
            finished(_region(good), [(fmt.SHA256, digest[:20])]),
            "TLV 0x10 at offset 2576 is 20 bytes, not 32 to 32",
        ),
        "duplicate-keyhash": (
            finished(_region(good), [(fmt.KEYHASH, keyhash), (fmt.KEYHASH, keyhash)]),
            "TLV 0x01 at offset 2612 follows TLV 0x01 at offset 2576: each TLV comes once",
        ),
        "duplicate-counter": (
            finished(
                patched(patched(good[:TLVS_AT], 10, "<H", 20), PROTECTED_AT + 2, "<H", 20)
                + good[PROTECTED_AT + 4 : TLVS_AT]
            ),
            "TLV 0x50 at offset 2572 follows TLV 0x50 at offset 2564",
        ),
        "signature-before-keyhash": (
            _reordered(good, [fmt.SHA256, fmt.ECDSA_SIG, fmt.KEYHASH]),
            f"TLV 0x01 at offset {2616 + len(signature)} follows TLV 0x22 at offset 2612: each"
            " TLV comes once, in imgtool's order SHA256, KEYHASH, ECDSA_SIG (MCUboot ignores a"
            " signature before its KEYHASH)",
        ),
        "hash-after-keyhash": (
            _reordered(good, [fmt.KEYHASH, fmt.SHA256, fmt.ECDSA_SIG]),
            "TLV 0x10 at offset 2612 follows TLV 0x01 at offset 2576",
        ),
        "no-hash": (finished(_region(good), [(fmt.KEYHASH, keyhash)]), "the image has no TLV 0x10"),
        "no-keyhash": (
            finished(_region(good), [(fmt.SHA256, digest)]),
            "the image has no TLV 0x01",
        ),
        "no-signature": (
            finished(_region(good), [(fmt.SHA256, digest), (fmt.KEYHASH, keyhash)]),
            "the image has no TLV 0x22",
        ),
        "no-counter": (finished(no_protected), "the image has no TLV 0x50"),
        "body-changed": (
            patched(good, 0x300, "<B", good[0x300] ^ 1),
            "the SHA256 TLV at offset 2576 is not the image's hash",
        ),
        "counter-changed": (patched(good, PROTECTED_AT + 8, "<I", 8), "is not the image's hash"),
        "wrong-key": (image(key=OTHER_KEY), "signed by another key"),
        "bad-signature": (
            patched(good, sig_at + 10, "<B", good[sig_at + 10] ^ 0x40),
            f"the ECDSA_SIG at offset {sig_at} does not verify",
        ),
        "other-key-claims-ours": (_claiming_our_key(), "does not verify"),
    }


def _reordered(data: bytes, order: list[int]) -> bytes:
    """*data*'s own TLV area, its SHA256, KEYHASH and ECDSA_SIG in *order*: nothing in it
    changed but where each stands, which no hash or signature covers."""
    tlvs = fmt.inspect(reader(data)).tlvs
    return finished(_region(data), [(kind, tlvs[kind][1]) for kind in order])


def malleated(data: bytes) -> bytes:
    """*data* with its signature (r, s) turned into (r, n - s): another valid signature over
    the same digest, made without the key. ECDSA allows both; imgtool signs with either."""
    tlvs = fmt.inspect(reader(data)).tlvs
    r, s = decode_dss_signature(tlvs[fmt.ECDSA_SIG][1])
    other = encode_dss_signature(r, p256_encoding.N - s)
    start = tlvs[fmt.SHA256][0] - fmt.TLV_HEADER_SIZE
    kept = [(kind, tlvs[kind][1]) for kind in (fmt.SHA256, fmt.KEYHASH)]
    return finished(data[:start], [*kept, (fmt.ECDSA_SIG, other)])


def _with_trailing_bytes(data: bytes) -> bytes:
    """*data* with its TLV area two bytes longer than its TLVs: too few for another TLV."""
    total = struct.unpack_from("<H", data, TLVS_AT + 2)[0]
    return patched(data, TLVS_AT + 2, "<H", total + 2) + b"\x00\x00"


def _claiming_our_key() -> bytes:
    """An image another key signed whose KEYHASH names ours: the signature must fail it."""
    forged = image(key=OTHER_KEY)
    at = fmt.inspect(reader(forged)).tlvs[fmt.KEYHASH][0] + 4
    return forged[:at] + fmt.key_hash(POINT) + forged[at + 32 :]
