"""P-256 keys derived from key material, signing through the crypto port.

Shared by the DICE and software roots of trust, whose keys are not stored but
re-derived at every boot from a secret (DICE: the UDS or the CDI; software:
its seed), so the same secret always gives the same key. The scalar is
``HKDF output (48 bytes) mod (n - 1) + 1``: 48 bytes make the bias of the
reduction negligible (FIPS 186-5 A.2.1), and the result lies in [1, n-1].

Signing goes through the platform's crypto port (``sign_es256``): OpenSSL,
constant-time, on CPython; the pure-Python core signer on MicroPython, which
is development-only there (not constant-time). The public point is computed
by the core on both, once per boot and then kept: that scalar multiplication
is not constant-time either, but it gives a timing observer one sample per
boot, not one per signature.
"""

from device_runtime.core.errors import CryptoError
from device_runtime.core.hkdf import hkdf
from device_runtime.core.p256_encoding import N

TYPE_CHECKING = False
if TYPE_CHECKING:
    from device_runtime.core.port_types import SignEs256

KEY_MATERIAL_SIZE = 48


def scalar_from(material: bytes) -> bytes:
    """The 32-byte private scalar for 48 bytes of key material."""
    if not isinstance(material, (bytes, bytearray)) or len(material) != KEY_MATERIAL_SIZE:
        raise CryptoError("key material must be 48 bytes")
    d = int.from_bytes(material, "big") % (N - 1) + 1
    return d.to_bytes(32, "big")


class DerivedKey:
    """A key callers can use but not read: ``public_key()`` and ``sign()`` only.

    ``tls_private_scalar`` is the one way out, for the CPython TLS bridge
    (``device_runtime/ports/cpython/tls_credential.py``): Python's ssl module
    takes a key only as a file. A hardware backend's key has no such method.
    """

    def __init__(self, scalar: bytes, sign_es256: "SignEs256") -> None:
        self._scalar = scalar
        self._sign = sign_es256
        self._public = b""

    def public_key(self) -> bytes:
        if not self._public:
            # Imported on first use, as the MicroPython crypto port does: a boot that
            # only seals or counts need not hold the curve code in RAM.
            from device_runtime.core import p256

            self._public = p256.public_key(self._scalar)
        return self._public

    def sign(self, message: bytes) -> bytes:
        return self._sign(self._scalar, message)

    def tls_private_scalar(self) -> bytes:
        return self._scalar


def derive_key(secret: bytes, salt: bytes, purpose: bytes, sign_es256: "SignEs256") -> DerivedKey:
    """The key named *purpose* under *secret* (and *salt*): the same inputs, the same key."""
    return DerivedKey(scalar_from(hkdf(secret, salt, purpose, KEY_MATERIAL_SIZE)), sign_es256)
