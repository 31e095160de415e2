"""Point arithmetic on NIST P-256, the engine under ``device_runtime.core.p256``.

Kept apart from the ECDSA layer so that each module compiles within a small
MicroPython heap (the compiler holds a whole module's parse tree at once).
Runs unchanged on CPython and MicroPython.

Speed comes from the shape of the computation, since the interpreter is slow:

* points are kept in Jacobian coordinates (a = -3 doubling), so the scalar
  loop needs no field inversion; the few inversions use the extended
  Euclidean algorithm rather than Fermat's ``pow``, whose 256 squarings each
  pay a full big-integer division;
* the generator has a window table of its 8 odd multiples in affine form,
  built lazily on first use and kept for the life of the process;
* ``u1*G + u2*Q`` is one interleaved (Shamir) double-and-add loop over the
  width-5 NAFs of both scalars, so both share 256 doublings.

Heap counts as much as speed: beside a root of trust and its tests, a
verification has to fit what is left of a 64 KiB heap, and that heap is
fragmented into holes of a few hundred bytes. So tables are single buffers of
at most 512 bytes, and the generator's window is as narrow as Q's: a width-7
table (32 entries, 2 KiB held for good) would save about 10 of 300 point
operations per signature.

None of this is constant-time; see ``device_runtime.core.p256``.
"""

from device_runtime.core.p256_encoding import P

GX = 0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296
GY = 0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5

G_WIDTH = 5
Q_WIDTH = 5
G_TABLE_SIZE = 1 << (G_WIDTH - 2)
Q_TABLE_SIZE = 1 << (Q_WIDTH - 2)
_DIGITS = 264
_g_table: bytearray | None = None


def inverse(a: int, m: int) -> int:
    """The inverse of *a* modulo the prime *m*, for 0 < a < m.

    Extended Euclid: its few dozen interpreted divisions cost far less than the
    hundreds of big-integer reductions inside ``pow(a, m - 2, m)``.
    """
    lo, hi = a, m
    x0, x1 = 1, 0
    while lo:
        q = hi // lo
        lo, hi = hi - q * lo, lo
        x0, x1 = x1 - q * x0, x0
    return x1 % m


def _double(x: int, y: int, z: int) -> tuple[int, int, int]:
    if not z:
        return x, y, z
    p = P
    delta = z * z % p
    gamma = y * y % p
    beta = x * gamma % p
    alpha = 3 * (x - delta) * (x + delta) % p
    x3 = (alpha * alpha - 8 * beta) % p
    z3 = 2 * y * z % p
    y3 = (alpha * (4 * beta - x3) - 8 * gamma * gamma) % p
    return x3, y3, z3


def _add_affine(x1: int, y1: int, z1: int, x2: int, y2: int) -> tuple[int, int, int]:
    # Jacobian (x1, y1, z1) plus affine (x2, y2), which is never infinity.
    if not z1:
        return x2, y2, 1
    p = P
    zz = z1 * z1 % p
    h = (x2 * zz - x1) % p
    r = (y2 * zz % p * z1 - y1) % p
    if not h:
        if r:
            return 1, 1, 0
        return _double(x2, y2, 1)
    hh = h * h % p
    hhh = h * hh % p
    v = x1 * hh % p
    x3 = (r * r - hhh - 2 * v) % p
    y3 = (r * (v - x3) - y1 * hhh) % p
    return x3, y3, z1 * h % p


def to_affine(x: int, y: int, z: int) -> tuple[int, int]:
    """Affine ``(x, y)`` of a finite Jacobian point, for encoding or comparing."""
    p = P
    zi = inverse(z, p)
    zi2 = zi * zi % p
    return x * zi2 % p, y * zi2 % p * zi % p


def odd_multiples(x: int, y: int, count: int) -> bytearray:
    """``[1, 3, 5, ...] * (x, y)`` in affine form, the window table for ``mul_add``.

    Affine entries make every addition in the main loop a cheaper mixed one.
    Entry *i* is the 64 bytes ``x || y`` at ``64 * i``: one buffer holds the
    table in about a third of the heap of as many pairs of ints, in a single
    allocation. Each entry is made affine by its own inversion rather than one
    shared by the whole table (Montgomery's trick): a few inversions more, but
    the peak heap is the table and one point, not every Jacobian point at once,
    which is what lets a verification fit a 64 KiB heap beside a root of trust.
    """
    table = bytearray(64 * count)
    tx, ty = to_affine(*_double(x, y, 1))
    for i in range(count):
        if i:
            x, y = to_affine(*_add_affine(x, y, 1, tx, ty))
        table[64 * i : 64 * i + 32] = x.to_bytes(32, "big")
        table[64 * i + 32 : 64 * i + 64] = y.to_bytes(32, "big")
    return table


def _generator_table() -> bytearray:
    # Built on first use and kept for the life of the process.
    global _g_table
    if _g_table is None:
        _g_table = odd_multiples(GX, GY, G_TABLE_SIZE)
    return _g_table


def _naf(k: int, width: int) -> bytearray:
    # Width-w non-adjacent form, least significant digit first: odd digits
    # below 2^(w-1) in magnitude, at least w-1 zeros after each. A bytearray
    # keeps the allocation small on a fragmented heap; a digit -d is stored as
    # 128 + d. Scalars are below 2^256, so the last carry lands below _DIGITS.
    bits = bin(k).encode()
    last = len(bits) - 1
    nbits = last - 1
    full = 1 << width
    half = full >> 1
    digits = bytearray(_DIGITS)
    carry = 0
    i = 0
    while i < nbits:
        if not (bits[last - i] - 48 + carry) & 1:
            carry = (bits[last - i] - 48 + carry) >> 1
            i += 1
            continue
        value = carry
        for j in range(min(width, nbits - i)):
            if bits[last - i - j] == 49:
                value += 1 << j
        if value >= half:
            digits[i] = 128 + full - value
            carry = 1
        else:
            digits[i] = value
            carry = 0
        i += width
    if carry:
        digits[i] = 1
    return digits


def _add_digit(x: int, y: int, z: int, d: int, table: bytearray) -> tuple[int, int, int]:
    at = (d & 127) >> 1 << 6
    ty = int.from_bytes(table[at + 32 : at + 64], "big")
    if d > 127:
        ty = P - ty
    return _add_affine(x, y, z, int.from_bytes(table[at : at + 32], "big"), ty)


def mul_add(u1: int, u2: int, q_table: bytearray) -> tuple[int, int, int]:
    """``u1*G + u2*Q`` as a Jacobian point (Z = 0 for infinity), scalars in [0, n).

    Q is given by ``odd_multiples(Q, Q_TABLE_SIZE)``; pass an empty table and
    u2 = 0 for ``u1*G`` alone.
    """
    g_table = _generator_table()
    d1 = _naf(u1, G_WIDTH)
    d2 = _naf(u2, Q_WIDTH)
    x, y, z = 1, 1, 0
    for i in range(_DIGITS - 1, -1, -1):
        if z:
            x, y, z = _double(x, y, z)
        if d1[i]:
            x, y, z = _add_digit(x, y, z, d1[i], g_table)
        if d2[i]:
            x, y, z = _add_digit(x, y, z, d2[i], q_table)
    return x, y, z
