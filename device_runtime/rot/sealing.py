"""Sealing a small secret to the measurement registers, without hardware.

Shared by the DICE and software roots of trust. Encrypt-then-MAC: the keys
come from HKDF over the backend's sealing secret (salt: all eight register
values), the cipher is an HMAC-SHA256 keystream over a fresh random nonce, and
the tag is HMAC-SHA256 over everything before it, compared in constant time.
A blob therefore opens only on the device that sealed it (its secret) and only
while every register holds the value it held at sealing time; any other blob,
truncated, tampered or foreign, is a :class:`RootOfTrustError`.

Blob layout: version (1 byte, 1) || nonce (16) || ciphertext (len(secret)) || tag (32).
"""

from device_runtime.core.errors import RootOfTrustError
from device_runtime.core.hkdf import expand, extract
from device_runtime.core.hmac_sha256 import digests_equal, hmac_sha256
from device_runtime.rot import MAX_SEALED

VERSION = 1
NONCE_SIZE = 16
TAG_SIZE = 32
OVERHEAD = 1 + NONCE_SIZE + TAG_SIZE


def _keys(sealing_secret: bytes, registers: bytes) -> tuple[bytes, bytes]:
    prk = extract(registers, sealing_secret)
    return expand(prk, b"sevenfold seal encryption", 32), expand(prk, b"sevenfold seal mac", 32)


def _xor_keystream(key: bytes, nonce: bytes, data: bytes) -> bytes:
    stream = b""
    block = 0
    while len(stream) < len(data):
        stream += hmac_sha256(key, nonce + bytes((block,)))
        block += 1
    return bytes(data[i] ^ stream[i] for i in range(len(data)))


def seal(sealing_secret: bytes, registers: bytes, secret: bytes, nonce: bytes) -> bytes:
    """The blob of *secret* bound to *registers* (all eight values) under *sealing_secret*."""
    if not isinstance(secret, (bytes, bytearray)):
        raise RootOfTrustError("a sealed secret must be bytes")
    if len(secret) > MAX_SEALED:
        raise RootOfTrustError("a sealed secret is at most " + str(MAX_SEALED) + " bytes")
    if len(nonce) != NONCE_SIZE:
        raise RootOfTrustError("sealing needs a 16-byte nonce")
    encryption, mac = _keys(sealing_secret, registers)
    body = bytes((VERSION,)) + nonce + _xor_keystream(encryption, nonce, bytes(secret))
    return body + hmac_sha256(mac, body)


def unseal(sealing_secret: bytes, registers: bytes, blob: bytes) -> bytes:
    """The secret in *blob*, if this device sealed it under these register values."""
    if not isinstance(blob, (bytes, bytearray)):
        raise RootOfTrustError("a sealed blob must be bytes")
    if len(blob) < OVERHEAD:
        raise RootOfTrustError("sealed blob is truncated: " + str(len(blob)) + " bytes")
    if len(blob) > OVERHEAD + MAX_SEALED:
        raise RootOfTrustError("sealed blob is longer than any this root of trust makes")
    if blob[0] != VERSION:
        raise RootOfTrustError("sealed blob has unknown version " + str(blob[0]))
    encryption, mac = _keys(sealing_secret, registers)
    body = bytes(blob[:-TAG_SIZE])
    if not digests_equal(hmac_sha256(mac, body), bytes(blob[-TAG_SIZE:])):
        raise RootOfTrustError(
            "sealed blob does not open: the measurements changed, or it was tampered with,"
            " truncated or sealed by another device"
        )
    nonce = body[1 : 1 + NONCE_SIZE]
    return _xor_keystream(encryption, nonce, body[1 + NONCE_SIZE :])
