"""SHA-512 (FIPS 180-4) in pure Python, for the MicroPython builds whose hashlib lacks it.

Ed25519 hashes with SHA-512 and TUF targets may be listed by it, so a device
needs it; ``new()`` hands out hashlib's where the interpreter has one (CPython)
and this one otherwise, with the same ``update``/``digest`` calls.
"""

import hashlib

_MASK = 0xFFFFFFFFFFFFFFFF
_K = [
    int(word, 16)
    for word in (
        "428a2f98d728ae22 7137449123ef65cd b5c0fbcfec4d3b2f e9b5dba58189dbbc 3956c25bf348b538"
        " 59f111f1b605d019 923f82a4af194f9b ab1c5ed5da6d8118 d807aa98a3030242 12835b0145706fbe"
        " 243185be4ee4b28c 550c7dc3d5ffb4e2 72be5d74f27b896f 80deb1fe3b1696b1 9bdc06a725c71235"
        " c19bf174cf692694 e49b69c19ef14ad2 efbe4786384f25e3 0fc19dc68b8cd5b5 240ca1cc77ac9c65"
        " 2de92c6f592b0275 4a7484aa6ea6e483 5cb0a9dcbd41fbd4 76f988da831153b5 983e5152ee66dfab"
        " a831c66d2db43210 b00327c898fb213f bf597fc7beef0ee4 c6e00bf33da88fc2 d5a79147930aa725"
        " 06ca6351e003826f 142929670a0e6e70 27b70a8546d22ffc 2e1b21385c26c926 4d2c6dfc5ac42aed"
        " 53380d139d95b3df 650a73548baf63de 766a0abb3c77b2a8 81c2c92e47edaee6 92722c851482353b"
        " a2bfe8a14cf10364 a81a664bbc423001 c24b8b70d0f89791 c76c51a30654be30 d192e819d6ef5218"
        " d69906245565a910 f40e35855771202a 106aa07032bbd1b8 19a4c116b8d2d0c8 1e376c085141ab53"
        " 2748774cdf8eeb99 34b0bcb5e19b48a8 391c0cb3c5c95a63 4ed8aa4ae3418acb 5b9cca4f7763e373"
        " 682e6ff3d6b2b8a3 748f82ee5defb2fc 78a5636f43172f60 84c87814a1f0ab72 8cc702081a6439ec"
        " 90befffa23631e28 a4506cebde82bde9 bef9a3f7b2c67915 c67178f2e372532b ca273eceea26619c"
        " d186b8c721c0c207 eada7dd6cde0eb1e f57d4f7fee6ed178 06f067aa72176fba 0a637dc5a2c898a6"
        " 113f9804bef90dae 1b710b35131c471b 28db77f523047d84 32caab7b40c72493 3c9ebe0a15c9bebc"
        " 431d67c49c100d4c 4cc5d4becb3e42b6 597f299cfc657e2a 5fcb6fab3ad6faec 6c44198c4a475817"
    ).split()
]
_H0 = (
    0x6A09E667F3BCC908,
    0xBB67AE8584CAA73B,
    0x3C6EF372FE94F82B,
    0xA54FF53A5F1D36F1,
    0x510E527FADE682D1,
    0x9B05688C2B3E6C1F,
    0x1F83D9ABFB41BD6B,
    0x5BE0CD19137E2179,
)


def _rotr(x: int, n: int) -> int:
    return ((x >> n) | (x << (64 - n))) & _MASK


class Sha512:
    """An incremental SHA-512: ``update`` as often as needed, then ``digest`` once."""

    def __init__(self, data: bytes = b"") -> None:
        self._h = list(_H0)
        self._pending = b""
        self._length = 0
        self.update(data)

    def update(self, data: "bytes | bytearray | memoryview") -> None:
        self._length += len(data)
        pending = self._pending + bytes(data)
        end = len(pending) - len(pending) % 128
        for offset in range(0, end, 128):
            self._block(pending, offset)
        self._pending = pending[end:]

    def _block(self, data: bytes, offset: int) -> None:
        w = [int.from_bytes(data[offset + 8 * i : offset + 8 * i + 8], "big") for i in range(16)]
        for i in range(16, 80):
            a, b = w[i - 15], w[i - 2]
            s0 = _rotr(a, 1) ^ _rotr(a, 8) ^ (a >> 7)
            s1 = _rotr(b, 19) ^ _rotr(b, 61) ^ (b >> 6)
            w.append((w[i - 16] + s0 + w[i - 7] + s1) & _MASK)
        a, b, c, d, e, f, g, h = self._h
        for i in range(80):
            t1 = h + (_rotr(e, 14) ^ _rotr(e, 18) ^ _rotr(e, 41)) + ((e & f) ^ (~e & g)) + _K[i]
            t1 = (t1 + w[i]) & _MASK
            t2 = (_rotr(a, 28) ^ _rotr(a, 34) ^ _rotr(a, 39)) + ((a & b) ^ (a & c) ^ (b & c))
            h, g, f, e, d, c, b, a = g, f, e, (d + t1) & _MASK, c, b, a, (t1 + t2) & _MASK
        mixed = (a, b, c, d, e, f, g, h)
        self._h = [(self._h[i] + mixed[i]) & _MASK for i in range(8)]

    def digest(self) -> bytes:
        """The 64-byte digest of everything given; the object is spent afterwards."""
        tail = self._pending + b"\x80" + bytes((111 - self._length) % 128)
        tail += (self._length * 8).to_bytes(16, "big")
        for offset in range(0, len(tail), 128):
            self._block(tail, offset)
        return b"".join(x.to_bytes(8, "big") for x in self._h)


def new(data: bytes = b"") -> "Sha512":
    """hashlib's SHA-512 where the interpreter has one, this module's otherwise."""
    native = getattr(hashlib, "sha512", None)
    return native(data) if native is not None else Sha512(data)
