"""EAT profile 1 read with independent code: what every evidence test checks about a token.

A token is decoded with cbor2, its signature verified with pycose, and on DICE
its Alias certificate checked with ``cryptography`` against the DeviceID
certificate: none of it shares code with the device's encoder. The factory is
``fleet_platform.pki`` (the manufacturer CA the fleet runs), so the DeviceID
certificates in the chain are the size real ones are. CPython only.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pycose.keys import EC2Key
from pycose.messages import Sign1Message

from device_runtime.core import evidence
from fleet_platform.pki import CertificateAuthority
from tests.device_runtime.evidence_on_device import DEVICE_ID
from tests.device_runtime.evidence_on_device import INPUTS as ON_DEVICE_INPUTS

INPUTS: dict[str, Any] = dict(ON_DEVICE_INPUTS)
"""What a device states, as :func:`device_runtime.core.evidence.token` takes it."""
IMAGE: bytes = INPUTS["image_digest"]


def manufacturer_ca(directory: Path) -> CertificateAuthority:
    return CertificateAuthority.create(
        common_name="Sevenfold Manufacturer CA", directory=directory, issues_issuers=True
    )


def deviceid_certificate(ca: CertificateAuthority, kind: str, csr_der: bytes) -> bytes:
    """The factory's step: a DeviceID certificate (DER) from the device's CSR."""
    pem = x509.load_der_x509_csr(csr_der).public_bytes(serialization.Encoding.PEM)
    if kind == "dice":
        issued = ca.sign_dice_device_id_csr(pem, required_common_name=DEVICE_ID)
    else:
        issued = ca.sign_csr(pem, required_common_name=DEVICE_ID)
    return x509.load_pem_x509_certificate(issued).public_bytes(serialization.Encoding.DER)


def _point(certificate: x509.Certificate) -> bytes:
    return certificate.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def verified_with_pycose(token: bytes, point: bytes) -> bool:
    """pycose's own Sig_structure and ES256 check. Its ``decode`` wants the tag's array as a
    list and its headers as dicts, which cbor2 6 gives inside a tag as a tuple and frozen
    maps (pycose issue #141); so the one-byte tag head (0xd2, tag 18) is read here and the
    untagged array decoded and handed to pycose."""
    assert token[0] == 0xD2
    message = Sign1Message.from_cose_obj(cbor2.loads(token[1:]), True)
    message.key = EC2Key(crv="P_256", x=point[1:33], y=point[33:])
    return bool(message.verify_signature())


def check_token(
    token: bytes, *, kind: str, deviceid_der: bytes, inputs: dict[str, Any] = INPUTS
) -> dict[int, Any]:
    """Every header and claim of *token* against the profile; returns the claims."""
    assert len(token) <= evidence.MAX_TOKEN
    outer = cbor2.loads(token)
    assert isinstance(outer, cbor2.CBORTag) and outer.tag == 18
    protected, unprotected, payload, signature = outer.value
    assert protected == bytes.fromhex("a10126")  # exactly {1: -7}
    assert list(unprotected) == [33]
    chain = list(unprotected[33])  # an array (cbor2 gives tag contents as tuples), never a bstr
    assert isinstance(unprotected[33], (list, tuple)) and chain[-1] == deviceid_der
    assert len(signature) == 64
    deviceid = x509.load_der_x509_certificate(deviceid_der)
    if kind == "dice":
        assert len(chain) == 2
        alias = x509.load_der_x509_certificate(chain[0])
        alias.verify_directly_issued_by(deviceid)
        signer = _point(alias)
    else:
        assert len(chain) == 1
        signer = _point(deviceid)
    assert verified_with_pycose(token, signer)
    assert not verified_with_pycose(token[:-1] + bytes([token[-1] ^ 1]), signer)
    assert cbor2.dumps(cbor2.loads(payload), canonical=True) == payload  # deterministic
    claims = cbor2.loads(payload)
    measurements = [[60, cbor2.dumps(["image", inputs["image_digest"]])],
                    [60, cbor2.dumps(["config", inputs["config_digest"]])]]  # fmt: skip
    assert claims == {
        10: inputs["nonce"],
        256: b"\x01" + hashlib.sha256(_point(deviceid)).digest(),
        258: inputs["oemid"],
        259: hashlib.sha256(inputs["hwmodel"].encode()).digest(),
        261: inputs["uptime"],
        263: inputs["dbgstat"],
        265: "tag:sevenfold.dev,2026:eat-profile:1",
        267: inputs["bootcount"],
        268: inputs["bootseed"],
        270: inputs["swname"],
        271: [inputs["swversion"], 16384],
        273: measurements,
        -70000: inputs["security_version"],
        -70001: kind,
    }
    return dict(claims)
