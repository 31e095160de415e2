"""Where a derived-key root of trust's identity key reaches the TLS library, on CPython.

Python's ``ssl`` module loads a private key only from a file, and the software
and DICE backends hold their DeviceID key as a scalar in memory. This module is
the one place that scalar leaves its root of trust: it is written as PEM into
an anonymous memory file (``os.memfd_create``), handed to ``ssl`` as
``/proc/self/fd/N`` and closed as soon as the TLS context has loaded it, so the
key is never written to disk. A hardware backend (TPM) needs another path
(a TLS engine or provider that signs in the TPM); it has no scalar to give.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from device_runtime.core import p256_encoding


class ScalarKey(Protocol):
    def tls_private_scalar(self) -> bytes: ...


class DerivedKeyHolder(Protocol):
    def identity_key(self) -> ScalarKey: ...


def private_key_pem(key: ScalarKey) -> bytes:
    """PKCS#8 PEM of a derived key, for a TLS stack only; never log or store it."""
    d = p256_encoding.private_int(key.tls_private_scalar())
    private = ec.derive_private_key(d, ec.SECP256R1())
    return private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@contextmanager
def key_file(key: ScalarKey) -> Iterator[Path]:
    """A path to *key*'s PEM, valid inside the ``with`` block, never on disk."""
    fd = os.memfd_create("sevenfold-tls-key", os.MFD_CLOEXEC)
    try:
        os.write(fd, private_key_pem(key))
        yield Path(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)


def identity_key_file(rot: DerivedKeyHolder) -> AbstractContextManager[Path]:
    """The DeviceID key's :func:`key_file`."""
    return key_file(rot.identity_key())
