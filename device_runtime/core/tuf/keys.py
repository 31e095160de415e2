"""TUF public keys as securesystemslib writes them, and the check of one signature by one.

``ecdsa`` (P-256, ``ecdsa-sha2-nistp256``: PEM SubjectPublicKeyInfo, DER
signature in hex) goes to the port's crypto (OpenSSL on CPython, the core's
pure P-256 on MicroPython); ``rsa`` (``rsassa-pss-sha256``) and ``ed25519`` (hex
key) to the core's own verifiers. A key of any other kind, or one whose
material or signature does not parse, just never counts towards a threshold:
TUF lets a role list keys a client does not know.
"""

import binascii

from device_runtime.core.errors import CryptoError
from device_runtime.core.tuf import canonical_json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from device_runtime.core.port_types import TufCrypto

_P256_SPKI_PREFIX = binascii.unhexlify("3059301306072a8648ce3d020106082a8648ce3d030107034200")
"""A SubjectPublicKeyInfo of id-ecPublicKey on prime256v1, up to its 65-byte point."""


def _pem_body(pem: object) -> bytes:
    if not isinstance(pem, str):
        raise CryptoError("public key is not a PEM string")
    begin = pem.find("-----BEGIN PUBLIC KEY-----")
    end = pem.find("-----END PUBLIC KEY-----")
    if begin < 0 or end < begin:
        raise CryptoError("public key is not a PEM PUBLIC KEY")
    text = "".join(pem[begin + 26 : end].split())
    return binascii.a2b_base64(text)


def _material(key: object) -> "tuple[str, bytes]":
    if isinstance(key, tuple):
        return key
    assert isinstance(key, dict)
    keytype, scheme, keyval = key["keytype"], key["scheme"], key["keyval"]
    public = keyval.get("public") if isinstance(keyval, dict) else None
    if scheme == "ecdsa-sha2-nistp256" and keytype in ("ecdsa", "ecdsa-sha2-nistp256"):
        spki = _pem_body(public)
        if len(spki) != len(_P256_SPKI_PREFIX) + 65 or not spki.startswith(_P256_SPKI_PREFIX):
            raise CryptoError("public key is not a P-256 SubjectPublicKeyInfo")
        return "ecdsa", spki[-65:]
    if scheme == "rsassa-pss-sha256" and keytype == "rsa":
        return "rsa", _pem_body(public)
    if scheme == "ed25519" and keytype == "ed25519" and isinstance(public, str):
        raw = binascii.unhexlify(public)
        if len(raw) == 32:
            return "ed25519", raw
    raise CryptoError("unsupported key type or scheme")


def usable(key: object) -> "tuple[str, bytes] | None":
    """*key* (as the metadata has it) as ``(kind, public key bytes)``, or None if unusable.

    Trusted metadata keeps its keys in this form once it is checked: a P-256
    point is 65 bytes where its PEM and the objects around it take hundreds.
    """
    try:
        return _material(key)
    except (CryptoError, ValueError, TypeError, KeyError, IndexError):
        return None


def signature_valid(
    key: object, signature_hex: str, signed: object, digest: bytes, crypto: "TufCrypto"
) -> bool:
    """Whether *signature_hex* is *key*'s over the canonical JSON of *signed*, whose SHA-256
    is *digest*; False for anything unusable."""
    try:
        kind, public = _material(key)
        signature = binascii.unhexlify(signature_hex)
        if kind == "ecdsa":
            crypto.verify_ecdsa_der(public, digest, signature)
        elif kind == "rsa":
            from device_runtime.core import rsa_pss

            rsa_pss.verify_digest(public, digest, signature)
        else:
            from device_runtime.core import ed25519

            ed25519.verify(public, signature, lambda sink: canonical_json.encode(signed, sink))
    except (CryptoError, ValueError, TypeError, KeyError, IndexError):
        return False
    return True
