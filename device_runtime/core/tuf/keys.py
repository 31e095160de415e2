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


def _verify(
    key: "dict[str, object]", signature: bytes, signed: object, digest: bytes, crypto: "TufCrypto"
) -> None:
    keytype, scheme, keyval = key["keytype"], key["scheme"], key["keyval"]
    public = keyval.get("public") if isinstance(keyval, dict) else None
    if scheme == "ecdsa-sha2-nistp256" and keytype in ("ecdsa", "ecdsa-sha2-nistp256"):
        spki = _pem_body(public)
        if len(spki) != len(_P256_SPKI_PREFIX) + 65 or not spki.startswith(_P256_SPKI_PREFIX):
            raise CryptoError("public key is not a P-256 SubjectPublicKeyInfo")
        crypto.verify_ecdsa_der(spki[-65:], digest, signature)
    elif scheme == "rsassa-pss-sha256" and keytype == "rsa":
        from device_runtime.core import rsa_pss

        rsa_pss.verify_digest(_pem_body(public), digest, signature)
    elif scheme == "ed25519" and keytype == "ed25519" and isinstance(public, str):
        from device_runtime.core import ed25519

        ed25519.verify(
            binascii.unhexlify(public), signature, lambda sink: canonical_json.encode(signed, sink)
        )
    else:
        raise CryptoError("unsupported key type or scheme")


def signature_valid(
    key: "dict[str, object]", signature_hex: str, signed: object, digest: bytes, crypto: "TufCrypto"
) -> bool:
    """Whether *signature_hex* is *key*'s over the canonical JSON of *signed*, whose SHA-256
    is *digest*; False for anything unusable."""
    try:
        _verify(key, binascii.unhexlify(signature_hex), signed, digest, crypto)
    except (CryptoError, ValueError, TypeError, IndexError):
        return False
    return True
