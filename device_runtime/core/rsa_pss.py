"""RSASSA-PSS with SHA-256 and MGF1-SHA-256 (RFC 8017), verification only, in pure Python.

TUF names ``rsassa-pss-sha256`` among its key schemes; a board has no RSA
library, and verifying is one modular exponentiation with a small exponent
plus the EMSA-PSS check, which the interpreter's big integers do. The salt
length is read from the encoding (any length passes, as securesystemslib's
verifier accepts), the public key from the PEM's SubjectPublicKeyInfo.
"""

import binascii
import hashlib

from device_runtime.core.errors import CryptoError

MAX_MODULUS_BYTES = 512
_RSA_ALGORITHM = binascii.unhexlify("300d06092a864886f70d0101010500")
"""AlgorithmIdentifier rsaEncryption with NULL parameters, as DER."""


def _element(data: bytes, offset: int, end: int, tag: int, what: str) -> tuple[int, int]:
    """The content span of the DER element with *tag* at *offset* (lengths in shortest form).

    A key is four nested elements of known tags, so this reads just those
    rather than loading the certificate codec (``der_parser``) into a small heap.
    """
    if offset + 2 > end or data[offset] != tag:
        raise CryptoError("RSA key: " + what + " is missing or not tagged " + hex(tag))
    length, start = data[offset + 1], offset + 2
    if length & 0x80:
        count = length & 0x7F
        if not 0 < count <= 2 or start + count > end:
            raise CryptoError("RSA key: " + what + " length is malformed")
        length = int.from_bytes(data[start : start + count], "big")
        start += count
        if length < (0x80 if count == 1 else 0x100):
            raise CryptoError("RSA key: " + what + " length is not in shortest form")
    if start + length > end:
        raise CryptoError("RSA key: " + what + " runs past its container")
    return start, start + length


def public_numbers(spki: bytes) -> tuple[int, int, int]:
    """``(n, e, byte length of n)`` from a DER SubjectPublicKeyInfo of an rsaEncryption key."""
    start, end = _element(spki, 0, len(spki), 0x30, "SubjectPublicKeyInfo")
    if end != len(spki):
        raise CryptoError("public key has trailing bytes")
    if spki[start : start + len(_RSA_ALGORITHM)] != _RSA_ALGORITHM:
        raise CryptoError("public key is not rsaEncryption")
    bits, bits_end = _element(spki, start + len(_RSA_ALGORITHM), end, 0x03, "key bits")
    if bits_end != end or spki[bits] != 0:
        raise CryptoError("key bit string has unused bits or trailing bytes")
    inner, inner_end = _element(spki, bits + 1, bits_end, 0x30, "RSAPublicKey")
    n_start, n_end = _element(spki, inner, inner_end, 0x02, "modulus")
    e_start, e_end = _element(spki, n_end, inner_end, 0x02, "exponent")
    if e_end != inner_end or inner_end != bits_end:
        raise CryptoError("RSA key has trailing bytes")
    modulus = spki[n_start:n_end]
    if modulus[:1] == b"\x00":
        modulus = modulus[1:]
    if not modulus or modulus[0] & 0x80 == 0 and n_end - n_start > len(modulus):
        raise CryptoError("RSA modulus is not minimally encoded")
    if not 128 <= len(modulus) <= MAX_MODULUS_BYTES or e_end - e_start > 8:
        raise CryptoError("RSA modulus or exponent size is outside what is accepted")
    return int.from_bytes(modulus, "big"), int.from_bytes(spki[e_start:e_end], "big"), len(modulus)


def _mgf1(seed: bytes, length: int) -> bytes:
    out = b""
    counter = 0
    while len(out) < length:
        out += hashlib.sha256(seed + counter.to_bytes(4, "big")).digest()
        counter += 1
    return out[:length]


def verify_digest(spki: bytes, digest: bytes, signature: bytes) -> None:
    """Return if *signature* is an RSASSA-PSS-SHA256 signature of the message whose
    SHA-256 is *digest*, else raise CryptoError."""
    n, e, size = public_numbers(spki)
    top, top_bits = n >> (8 * size - 8), 0
    while top:
        top, top_bits = top >> 1, top_bits + 1
    # emBits = modBits - 1; the encoded message is one byte shorter when that is a multiple of 8.
    em_bits = 8 * (size - 1) + top_bits - 1
    em_len = (em_bits + 7) // 8
    s = int.from_bytes(signature, "big")
    if len(signature) != size or s >= n or e < 3:
        raise CryptoError("RSA signature has the wrong size or is out of range")
    m = pow(s, e, n)
    if m >> (8 * em_len):
        raise CryptoError("signature does not match")
    em = m.to_bytes(em_len, "big")
    if em[-1] != 0xBC:
        raise CryptoError("signature does not match")
    masked, encoded = em[: em_len - 33], em[em_len - 33 : -1]
    clear_bits = 8 * em_len - em_bits
    if masked[0] >> (8 - clear_bits) if clear_bits else 0:
        raise CryptoError("signature does not match")
    mask = _mgf1(encoded, len(masked))
    db = bytearray(masked[i] ^ mask[i] for i in range(len(masked)))
    db[0] &= 0xFF >> clear_bits
    start = 0
    while start < len(db) and db[start] == 0:
        start += 1
    if start == len(db) or db[start] != 1:
        raise CryptoError("signature does not match")
    if hashlib.sha256(bytes(8) + digest + bytes(db[start + 1 :])).digest() != encoded:
        raise CryptoError("signature does not match")
