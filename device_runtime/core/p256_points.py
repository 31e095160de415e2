"""Point arithmetic on NIST P-256, the engine under ``device_runtime.core.p256``.

Kept apart from the ECDSA layer so that each module compiles within a small
MicroPython heap (the compiler holds a whole module's parse tree at once).
Runs unchanged on CPython and MicroPython.

Speed comes from the shape of the computation, since the interpreter is slow:

* points are kept in Jacobian coordinates (a = -3 doubling), so the scalar
  loop needs no field inversion; the few inversions use the extended
  Euclidean algorithm rather than Fermat's ``pow``, whose 256 squarings each
  pay a full big-integer division;
* the generator has a window table of its 32 odd multiples in affine form,
  built lazily on first use and kept for the life of the process;
* ``u1*G + u2*Q`` is one interleaved (Shamir) double-and-add loop over the
  width-7 and width-5 NAFs of both scalars, so both share 256 doublings.

None of this is constant-time; see ``device_runtime.core.p256``.
"""

# Curve y^2 = x^3 - 3x + B over GF(P); G generates a group of prime order N.
P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
GX = 0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296
GY = 0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5

G_WIDTH = 7
Q_WIDTH = 5
G_TABLE_SIZE = 1 << (G_WIDTH - 2)
Q_TABLE_SIZE = 1 << (Q_WIDTH - 2)
_DIGITS = 264
_g_table: list[bytes] | None = None


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


def _pack(x: int, y: int) -> bytes:
    # A 64-byte x || y holds a table entry in about half the heap of two ints.
    return x.to_bytes(32, "big") + y.to_bytes(32, "big")


def odd_multiples(x: int, y: int, count: int) -> list[bytes]:
    """``[1, 3, 5, ...] * (x, y)`` in affine form, the window table for ``mul_add``.

    Affine entries make every addition in the main loop a cheaper mixed one;
    the conversion costs one inversion for 2Q and one for the whole table
    (Montgomery's trick). Entries are packed ``x || y`` (see ``_pack``).
    """
    p = P
    tx, ty = to_affine(*_double(x, y, 1))
    points = [(x, y, 1)]
    for _ in range(count - 1):
        px, py, pz = points[-1]
        points.append(_add_affine(px, py, pz, tx, ty))
    prefix = []
    acc = 1
    for point in points:
        acc = acc * point[2] % p
        prefix.append(acc)
    inv = inverse(acc, p)
    table = [b""] * count
    for i in range(count - 1, -1, -1):
        px, py, pz = points[i]
        zi = inv * prefix[i - 1] % p if i else inv
        inv = inv * pz % p
        zi2 = zi * zi % p
        table[i] = _pack(px * zi2 % p, py * zi2 % p * zi % p)
    return table


def _generator_table() -> list[bytes]:
    # Built one point and one inversion at a time: slower than odd_multiples'
    # shared inversion, but it runs once per process and its peak heap is the
    # table itself, which matters more in a 64 KiB heap.
    global _g_table
    if _g_table is None:
        tx, ty = to_affine(*_double(GX, GY, 1))
        x, y = GX, GY
        table = [_pack(x, y)]
        for _ in range(G_TABLE_SIZE - 1):
            x, y = to_affine(*_add_affine(x, y, 1, tx, ty))
            table.append(_pack(x, y))
        _g_table = table
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


def _add_digit(x: int, y: int, z: int, d: int, table: list[bytes]) -> tuple[int, int, int]:
    entry = table[(d & 127) >> 1]
    ty = int.from_bytes(entry[32:], "big")
    if d > 127:
        ty = P - ty
    return _add_affine(x, y, z, int.from_bytes(entry[:32], "big"), ty)


def mul_add(u1: int, u2: int, q_table: list[bytes]) -> tuple[int, int, int]:
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
