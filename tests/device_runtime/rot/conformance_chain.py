"""The certificate-chain check of the conformance suite (``conformance.check_certificate_chain``).

Apart for RAM's sake, like the CSR check: on DICE the chain holds an Alias
certificate issued on the device, whose DER encoder and parser do not fit in
64 KiB beside the key checks (see ``test_conformance_chain``).
"""

import gc

from tests.device_runtime.rot.deviceid_standin import deviceid_certificate

PORTABLE_HELPER = True


def check_certificate_chain_der(backend):
    """Leaf first, the DeviceID certificate given last: two certificates on DICE, one elsewhere."""
    rot = backend.open("a")
    gc.collect()
    certificate = deviceid_certificate(rot, "device-0042")
    gc.collect()
    chain = rot.certificate_chain(certificate, "device-0042")
    assert chain[-1] == certificate
    assert len(chain) == (2 if backend.kind == "dice" else 1)
    assert all(isinstance(c, bytes) and c[0] == 0x30 for c in chain)
