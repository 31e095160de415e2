"""Mutual TLS with the DeviceID key inside the TPM: OpenSSL's tpm2 provider under Python's ssl.

Python's ``ssl`` module opens a client key from a file only. With Debian's
``tpm2-openssl`` provider loaded, that file may be a "TSS2 PRIVATE KEY" PEM
(``TpmRootOfTrust.tls_private_key_pem``): a parent handle and the key's blob,
wrapped by the TPM, so the TLS handshake's signature is made by the TPM and
the key is never in the process. Two conditions, both met here:

* OpenSSL reads its configuration once, when the process first uses it, so
  the device process must be *started* with ``environment()`` (the tests and
  the demo start TPM devices as processes of their own; nothing else in such a
  process may need OpenSSL configured differently).
* The configuration prefers the tpm2 provider for every algorithm
  (``?provider=tpm2``): OpenSSL 3.0 signs the handshake with the provider it
  fetched the signature from, not with the key's own, and only the tpm2
  provider can sign with a TPM key. The price is that the handshake's hashes
  run in the TPM too, which needs a resource manager (``tpm2-abrmd`` or
  ``/dev/tpmrm0``): a TPM holds only three transient objects. One handshake
  costs about 0.1 s on swtpm.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from device_runtime.ports.cpython.atomic_file import write_atomic

if TYPE_CHECKING:
    from device_runtime.rot.tpm import TpmRootOfTrust

CONFIG_FILE = "openssl-tpm2.cnf"
KEY_FILE = "deviceid.tss2.pem"

_CONFIG = """\
# OpenSSL configuration of a TPM device process (device_runtime/ports/cpython/tpm_tls.py).
openssl_conf = openssl_init

[openssl_init]
providers = provider_sect
alg_section = algorithm_sect

[algorithm_sect]
default_properties = ?provider=tpm2

[provider_sect]
default = default_sect
tpm2 = tpm2_sect

[default_sect]
activate = 1

[tpm2_sect]
activate = 1
"""


def environment(*, tcti: str, directory: Path) -> dict[str, str]:
    """The variables a TPM device process must start with; writes the configuration file."""
    config = directory / CONFIG_FILE
    write_atomic(config, _CONFIG.encode(), mode=0o600)
    return {"OPENSSL_CONF": str(config), "TPM2OPENSSL_TCTI": tcti}


def write_key_file(rot: TpmRootOfTrust, directory: Path) -> Path:
    """The DeviceID key's TSS2 PEM (a TPM-wrapped blob, not the key) for ``load_cert_chain``."""
    path = directory / KEY_FILE
    write_atomic(path, rot.tls_private_key_pem(), mode=0o600)
    return path
