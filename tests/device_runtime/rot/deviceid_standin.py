"""A DeviceID certificate the conformance suite can make on the device itself, under MicroPython.

A factory certifies the DeviceID key with its CA (``fleet_platform.pki``), which
a 64 KiB MicroPython process cannot hold; the contract only needs a DER
certificate of the identity key to chain to. So this one is self-signed by the
identity key, built with the core's own DER encoder. Where the real factory can
run (CPython), the evidence tests use it instead.
"""

from device_runtime.core import der

PORTABLE_HELPER = True
NOT_BEFORE = "20260101000000Z"
NOT_AFTER = "99991231235959Z"


def deviceid_certificate(rot, common_name):
    """DER X.509 v3 of *rot*'s identity key, CN = *common_name*, signed by that key."""
    key = rot.identity_key()
    subject = der.name((der.OID_COMMON_NAME, common_name))
    signature_algorithm = der.algorithm(der.OID_ECDSA_WITH_SHA256)
    tbs = der.sequence(
        der.context(0, der.integer(2)),
        der.integer(1),
        signature_algorithm,
        subject,
        der.sequence(der.generalized_time(NOT_BEFORE), der.generalized_time(NOT_AFTER)),
        subject,
        der.ec_public_key_info(key.public_key()),
    )
    signature = der.bit_string(der.ecdsa_signature(key.sign(tbs)))
    return der.sequence(tbs, signature_algorithm, signature)
