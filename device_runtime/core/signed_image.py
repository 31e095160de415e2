"""MCUboot signed firmware images (``docs/images.md``), parsed and verified in one pass.

A device checks an image before it installs or boots it, and an image is
larger than a small device's heap, so the image comes through a ``read(n)``
callable a chunk at a time and is never held whole: memory stays the same
whatever the image's size. The layout is MCUboot's, so that what ``imgtool``
signs verifies here and what ``device_runtime.image_signer`` signs verifies
with ``imgtool`` and MCUboot::

    header: 32 bytes, then padding up to hdr_size | body: img_size bytes
    | protected TLV area: info (0x6908, tlv_tot = protect_tlv_size), SEC_CNT
    | TLV area: info (0x6907, tlv_tot), SHA256, KEYHASH, ECDSA_SIG

Integers are little-endian; a TLV is ``type: u16, length: u16, value``, packed
with no alignment, and an area's ``tlv_tot`` counts its own 4-byte info. The
SHA-256 covers everything before the TLV area (header, padding, body,
protected TLVs): it is the image's measurement. The ECDSA P-256 signature
(DER) is over that digest, by the key whose SubjectPublicKeyInfo hashes to
KEYHASH.

Only what this project signs is accepted: each TLV once, in its own area, of
its exact size, in imgtool's order (SHA256, KEYHASH, ECDSA_SIG); no flag but
PIC (:data:`SUPPORTED_FLAGS`): a verified image is one a board can boot. The
order matters because MCUboot reads the unhashed TLV area in order and ignores
a signature no KEYHASH came before: an image anyone reordered would pass here
and be refused on the device. MCUboot skips TLVs it does not know; this
refuses them, as a protected one is a signed statement (a dependency, a boot
record) this verifier could not honour. Every rejection is
an :class:`ImageError` naming the offset. Portable: CPython and MicroPython.
"""

import hashlib
import struct

from device_runtime.core import der
from device_runtime.core.errors import CryptoError, SevenfoldError
from device_runtime.core.hmac_sha256 import digests_equal

TYPE_CHECKING = False
if TYPE_CHECKING:
    from hashlib import _Hash

    from device_runtime.core.port_types import ReadBytes, VerifyEcdsaDer

    Tlvs = dict[int, tuple[int, bytes]]

IMAGE_MAGIC = 0x96F3B83D
HEADER_FORMAT = "<IIHHIIBBHII"
"""magic, load_addr, hdr_size, protect_tlv_size, img_size, flags, version (major, minor,
revision, build), pad: the 32-byte header."""
HEADER_SIZE = 32
TLV_FORMAT = "<HH"
"""An area's info (magic, tlv_tot) and a TLV's header (type, length) alike."""
TLV_HEADER_SIZE = 4
TLV_INFO_MAGIC = 0x6907
PROTECTED_INFO_MAGIC = 0x6908
KEYHASH = 0x01
SHA256 = 0x10
ECDSA_SIG = 0x22
SEC_CNT = 0x50
PROTECTED = {SEC_CNT: (4, 4, 0)}
UNPROTECTED = {SHA256: (32, 32, 0), KEYHASH: (32, 32, 1), ECDSA_SIG: (8, 72, 2)}
"""The TLVs each area may hold: the fewest and most bytes of each value, and its rank in
the order they must come in."""
NON_BOOTABLE = 0x10
SUPPORTED_FLAGS = 0x1
"""PIC only: a position-independent image asks nothing of a board. Refused: NON_BOOTABLE
(MCUboot boots no such slot), RAM_LOAD (0x20) and ROM_FIXED (0x100), whose load address
says where to run, which no board here honours (a payload runs where it is read),
encrypted (0x4, 0x8), compressed (0x200, 0x400, 0x800) and flags MCUboot does not define."""
MAX_IMAGE_SIZE = 256 << 20
"""Bytes up to the end of the TLV area, unless the caller gives its slot's size: a
Linux-class board's image (a root filesystem) runs to hundreds of MiB, and a
microcontroller's slot is far smaller, so its bootloader passes the slot's size."""
CHUNK_SIZE = 4096


class ImageError(SevenfoldError):
    """An image is malformed, over a limit, or not signed by the expected key; the reason
    names the offset at fault.

    Here rather than in ``errors``: no peer sends it as a protocol code, and every
    class there costs a device heap whenever ``errors`` loads, images or not.
    """

    code = "bad-image"


def key_hash(public_key: bytes) -> bytes:
    """The KEYHASH MCUboot matches: SHA-256 of the key's SubjectPublicKeyInfo DER."""
    return hashlib.sha256(der.ec_public_key_info(public_key)).digest()


class Image:
    """What an image states about itself, its structure checked; nothing in it is trusted yet.

    ``digest`` is the SHA-256 computed over the signed region, which the SHA256
    TLV should state; ``tlvs`` maps each TLV's type to ``(offset, value)``;
    ``size`` is the offset where the TLV area ends.
    """

    def __init__(self, fields: "tuple[int, ...]", digest: bytes, tlvs: "Tlvs", size: int) -> None:
        _, self.load_address, self.header_size, self.protected_size = fields[:4]
        self.payload_size, self.flags, major, minor, revision, build = fields[4:10]
        self.version = "%d.%d.%d" % (major, minor, revision) + ("+%d" % build if build else "")
        self.digest = digest
        self.tlvs = tlvs
        self.size = size

    def value(self, kind: int) -> bytes:
        """The value of the TLV of type *kind*, refused when the image has none."""
        found = self.tlvs.get(kind)
        if found is None:
            raise ImageError("the image has no TLV 0x%02x" % kind)
        return found[1]

    @property
    def security_counter(self) -> int:
        return int.from_bytes(self.value(SEC_CNT), "little")


class VerifiedImage:
    """An image whose hash held and whose signature the expected key made: what may boot.

    ``image_hash`` is its measurement, the value attestation endorses.
    """

    def __init__(self, image: Image) -> None:
        self.version = image.version
        self.security_counter = image.security_counter
        self.image_hash = image.digest
        self.key_hash = image.value(KEYHASH)
        self.header_size = image.header_size
        self.payload_size = image.payload_size
        self.size = image.size


class _Stream:
    """The caller's ``read(n)``, which may return fewer bytes, and the offset it has reached."""

    def __init__(self, read: "ReadBytes", chunk_size: int) -> None:
        self.read = read
        self.chunk_size = chunk_size
        self.offset = 0

    def _part(self, n: int, what: str) -> "bytes | memoryview":
        part = self.read(n)
        if not part:
            raise ImageError(what + " truncated at offset " + str(self.offset))
        if len(part) > n:
            raise ImageError("the reader returned %d bytes for %d" % (len(part), n))
        self.offset += len(part)
        return part

    def take(self, n: int, what: str, sha: "_Hash | None") -> bytes:
        data = b""
        while len(data) < n:
            data += self._part(n - len(data), what)
        if sha is not None:
            sha.update(data)
        return data

    def hash_through(self, n: int, what: str, sha: "_Hash") -> None:
        """Hash the next *n* bytes holding one chunk at a time (zero-copy when the reader
        returns memoryviews)."""
        while n:
            part = self._part(min(n, self.chunk_size), what)
            sha.update(part)
            n -= len(part)


def _area(
    stream: _Stream,
    end: int,
    allowed: "dict[int, tuple[int, int, int]]",
    where: str,
    sha: "_Hash | None",
    tlvs: "Tlvs",
) -> None:
    """The TLVs up to offset *end*: each allowed in this area, of its size, and each of a
    higher rank than the one before (so once, in order)."""
    if end < stream.offset:
        raise ImageError(where + " at offset %d is under its 4-byte info" % (stream.offset - 4))
    last = -1
    while stream.offset < end:
        at = " at offset %d" % stream.offset
        length = TLV_HEADER_SIZE
        kind = -1
        if end - stream.offset >= length:
            kind, length = struct.unpack(TLV_FORMAT, stream.take(length, "TLV", sha))
        if length > end - stream.offset:
            raise ImageError("TLV%s (%d bytes) runs past the end of the %s at offset %d"
                             % (at, length, where, end))  # fmt: skip
        limits = allowed.get(kind)
        if limits is None:
            raise ImageError("TLV 0x%02x%s is not one the %s may hold" % (kind, at, where))
        if not limits[0] <= length <= limits[1]:
            raise ImageError("TLV 0x%02x%s is %d bytes, not %d to %d"
                             % (kind, at, length, limits[0], limits[1]))  # fmt: skip
        if last in allowed and limits[2] <= allowed[last][2]:
            raise ImageError("TLV 0x%02x%s follows TLV 0x%02x at offset %d: each TLV comes once,"
                             " in imgtool's order SHA256, KEYHASH, ECDSA_SIG (MCUboot ignores a"
                             " signature before its KEYHASH)"
                             % (kind, at, last, tlvs[last][0]))  # fmt: skip
        last = kind
        tlvs[kind] = (stream.offset - TLV_HEADER_SIZE, stream.take(length, "TLV", sha))


def inspect(
    read: "ReadBytes", max_size: int = MAX_IMAGE_SIZE, chunk_size: int = CHUNK_SIZE
) -> Image:
    """The image that ``read(n)`` yields, its structure checked and its digest computed.

    Needs no key and checks neither hash nor signature: for ``sevenfold image
    inspect``, and the first half of :func:`verify`. Reads nothing past the TLV area.
    """
    stream = _Stream(read, chunk_size)
    sha = hashlib.sha256()
    fields = struct.unpack(HEADER_FORMAT, stream.take(HEADER_SIZE, "header", sha))
    magic, _, header_size, protected_size, payload_size, flags = fields[:6]
    if magic != IMAGE_MAGIC:
        raise ImageError("bad magic 0x%08x at offset 0, not MCUboot's 0x96f3b83d" % magic)
    if header_size < HEADER_SIZE:
        raise ImageError("header size %d at offset 8 is under the 32-byte header" % header_size)
    if flags & NON_BOOTABLE:
        raise ImageError("flags 0x%x at offset 16: NON_BOOTABLE, which MCUboot never boots" % flags)
    if flags & ~SUPPORTED_FLAGS:
        raise ImageError("flags 0x%x at offset 16 ask for what is not supported (only PIC)" % flags)
    tlv_offset = header_size + payload_size
    if tlv_offset + protected_size + TLV_HEADER_SIZE > max_size:
        raise ImageError("the header's sizes at offset 8 (header %d, body %d, protected %d) run"
                         " past the %d-byte limit" % (header_size, payload_size, protected_size,
                                                      max_size))  # fmt: skip
    stream.hash_through(tlv_offset - HEADER_SIZE, "image body of %d bytes" % payload_size, sha)
    tlvs: "Tlvs" = {}
    magic, total = struct.unpack(TLV_FORMAT, stream.take(TLV_HEADER_SIZE, "TLV info", None))
    if magic == PROTECTED_INFO_MAGIC:
        if total != protected_size:
            raise ImageError("the protected TLV area at offset %d is %d bytes, the header says %d"
                             % (tlv_offset, total, protected_size))  # fmt: skip
        sha.update(struct.pack(TLV_FORMAT, magic, total))
        _area(stream, tlv_offset + total, PROTECTED, "protected TLV area", sha, tlvs)
        magic, total = struct.unpack(TLV_FORMAT, stream.take(TLV_HEADER_SIZE, "TLV info", None))
    elif protected_size:
        raise ImageError("the header says %d bytes of protected TLVs, offset %d has none"
                         % (protected_size, tlv_offset))  # fmt: skip
    start = stream.offset - TLV_HEADER_SIZE
    if magic != TLV_INFO_MAGIC:
        raise ImageError("no TLV area at offset %d (magic 0x%04x, not 0x6907)" % (start, magic))
    if start + total > max_size:
        raise ImageError("the TLV area at offset %d (%d bytes) runs past the %d-byte limit"
                         % (start, total, max_size))  # fmt: skip
    _area(stream, start + total, UNPROTECTED, "TLV area", None, tlvs)
    return Image(fields, sha.digest(), tlvs, start + total)


def verify(
    read: "ReadBytes",
    public_key: bytes,
    verify_signature: "VerifyEcdsaDer",
    max_size: int = MAX_IMAGE_SIZE,
    chunk_size: int = CHUNK_SIZE,
) -> VerifiedImage:
    """The image ``read(n)`` yields, if its hash holds and *public_key* signed it.

    *public_key* is the expected key's 65-byte SEC1 point; *verify_signature*
    is the crypto port's ``verify_ecdsa_der(public_key, digest, signature)``,
    which raises :class:`CryptoError`. The image must state its security
    counter. Raises :class:`ImageError` with the reason otherwise.
    """
    expected_key = key_hash(public_key)
    image = inspect(read, max_size, chunk_size)
    if not digests_equal(image.value(SHA256), image.digest):
        raise ImageError("the SHA256 TLV at offset %d is not the image's hash"
                         % image.tlvs[SHA256][0])  # fmt: skip
    if not digests_equal(image.value(KEYHASH), expected_key):
        raise ImageError("signed by another key: the KEYHASH at offset %d is not the expected"
                         " key's" % image.tlvs[KEYHASH][0])  # fmt: skip
    verified = VerifiedImage(image)
    try:
        verify_signature(public_key, image.digest, image.value(ECDSA_SIG))
    except CryptoError as exc:
        raise ImageError("the ECDSA_SIG at offset %d does not verify: %s"
                         % (image.tlvs[ECDSA_SIG][0], exc.reason)) from None  # fmt: skip
    return verified
