"""The CSR check of the conformance suite (``conformance.check_csr``), apart for RAM's sake.

On CPython it runs against every portable backend, parsing the request back
on the same machine. Under MicroPython at 64 KiB the parser would not fit
beside a backend and the curve code (it passes from about 72 KiB), and a
device never reads its own request: there the check is split into a device
half (``csr_on_device``, one PORTABLE module per backend, each in a process of
its own) and a host half (``test_conformance_csr_host``) that verifies what
the device printed.
"""

from device_runtime.core import der, der_parser, p256
from tests.device_runtime.refusal import refused

PORTABLE_HELPER = True


def csr_parts(request):
    """``(info, signature)`` of a DER PKCS#10 request: what was signed and the raw r || s."""
    start, end = der_parser.expect(request, 0, len(request), der.SEQUENCE, "request")
    assert end == len(request)
    _, info_end = der_parser.expect(request, start, end, der.SEQUENCE, "info")
    algorithm_end = der_parser.expect(request, info_end, end, der.SEQUENCE, "algorithm")[1]
    assert request[info_end:algorithm_end] == der.algorithm(der.OID_ECDSA_WITH_SHA256)
    bits, bits_end = der_parser.expect(request, algorithm_end, end, der.BIT_STRING, "signature")
    assert bits_end == end and request[bits] == 0
    value, value_end = der_parser.expect(request, bits + 1, end, der.SEQUENCE, "Ecdsa-Sig-Value")
    r_start, r_end = der_parser.expect(request, value, value_end, der.INTEGER, "r")
    s_start, s_end = der_parser.expect(request, r_end, value_end, der.INTEGER, "s")
    r = int.from_bytes(request[r_start:r_end], "big")
    s = int.from_bytes(request[s_start:s_end], "big")
    return request[start:info_end], r.to_bytes(32, "big") + s.to_bytes(32, "big")


def check_csr_der(backend):
    rot = backend.open("a")
    request = rot.csr("device-0042")
    info, signature = csr_parts(request)
    p256.verify(rot.identity_key().public_key(), info, signature)
    assert der.name((der.OID_COMMON_NAME, "device-0042")) in info
    assert der.ec_public_key_info(rot.identity_key().public_key()) in info
    for bad in ("", "x" * 65, 5, None, b"device"):
        refused(rot.csr, bad)
