"""Evidence built the way a device builds it, but with independent code: cbor2 and pycose.

Devices come from the real roots of trust (``DiceRootOfTrust``,
``SoftwareRootOfTrust``) in a temporary directory, certified by a real
manufacturer CA (``fleet_platform.pki``), so the chain the verifier judges is
the one a factory and a device produce. Tokens are encoded with cbor2 and
signed through the root of trust's key, or made whole by pycose; every field
can be overridden to build the hostile variants.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pycose.algorithms import Es256
from pycose.headers import Algorithm
from pycose.keys.ec2 import EC2Key
from pycose.messages.sign1message import Sign1Message

from attestation_server.appraisal import Challenge, Endorsement, History, ProvenDevice
from device_runtime.ports.cpython import crypto
from device_runtime.ports.cpython.storage import DirectoryStore
from device_runtime.rot import dice
from device_runtime.rot.software import SoftwareRootOfTrust
from fleet_platform.pki import CertificateAuthority

HWMODEL = "sevenfold-board-r2"
IMAGE = hashlib.sha256(b"firmware image 1.4.0").digest()
CONFIG = hashlib.sha256(b"site configuration").digest()
SWVERSION = "1.4.0"
SVN = 3
NONCE = bytes(range(32))
BOOTSEED = hashlib.sha256(b"boot seed").digest()
BOOTCOUNT = 7
PROFILE = "tag:sevenfold.dev,2026:eat-profile:1"
FIRST_ATTESTATION = History(bootcount=None, bootseed=None, tpm_reset_count=None, tpm_clock=None)

Signer = Callable[[bytes], bytes]


def pem_csr(der_csr: bytes) -> bytes:
    return x509.load_der_x509_csr(der_csr).public_bytes(serialization.Encoding.PEM)


def der_certificate(pem: bytes) -> bytes:
    return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)


@dataclass
class Device:
    """A device as the verifier is told of it, with the means to sign evidence as it would."""

    device_id: str
    rot_kind: str
    chain: list[bytes]
    deviceid_key: bytes
    signer: Signer
    signing_scalar: bytes | None
    signing_point: bytes
    quote_key: bytes | None = None
    other_ids_with_key: tuple[str, ...] = field(default=())

    def proven(self, **changes: object) -> ProvenDevice:
        values: dict[str, object] = {
            "device_id": self.device_id,
            "hwmodel": HWMODEL,
            "rot_kind": self.rot_kind,
            "deviceid_key": self.deviceid_key,
            "quote_key": self.quote_key,
            "other_ids_with_key": self.other_ids_with_key,
        }
        values.update(changes)
        return ProvenDevice(**values)  # type: ignore[arg-type]


def manufacturer(directory: Path, name: str = "Maker CA") -> CertificateAuthority:
    return CertificateAuthority.create(common_name=name, directory=directory, issues_issuers=True)


def dice_device(
    maker: CertificateAuthority,
    directory: Path,
    device_id: str = "board-a-1",
    *,
    image: bytes = IMAGE,
    svn: int = SVN,
) -> Device:
    """A DICE device booted on *image*: its Alias certificate states *image* and *svn*."""
    directory.mkdir(parents=True, exist_ok=True)
    uds = DirectoryStore(directory=directory)
    if uds.read(dice.UDS_KEY) is None:
        dice.manufacture(uds, crypto.random_bytes)
    rot = dice.DiceRootOfTrust.boot(
        uds_store=uds,
        store=uds,
        firmware_measurement=image,
        vendor="Sevenfold",
        model=HWMODEL,
        version=SWVERSION,
        svn=svn,
        random_bytes=crypto.random_bytes,
        sign_es256=crypto.sign_es256,
    )
    deviceid = der_certificate(
        maker.sign_dice_device_id_csr(pem_csr(rot.csr(device_id)), required_common_name=device_id)
    )
    alias = rot.attestation_key()
    return Device(
        device_id=device_id,
        rot_kind="dice",
        chain=rot.certificate_chain(deviceid, device_id),
        deviceid_key=rot.identity_key().public_key(),
        signer=alias.sign,
        signing_scalar=alias.tls_private_scalar(),
        signing_point=alias.public_key(),
    )


def software_device(
    maker: CertificateAuthority, directory: Path, device_id: str = "board-s-1"
) -> Device:
    directory.mkdir(parents=True, exist_ok=True)
    rot = SoftwareRootOfTrust.open(
        store=DirectoryStore(directory=directory),
        random_bytes=crypto.random_bytes,
        sign_es256=crypto.sign_es256,
    )
    deviceid = der_certificate(
        maker.sign_csr(pem_csr(rot.csr(device_id)), required_common_name=device_id)
    )
    key = rot.identity_key()
    return Device(
        device_id=device_id,
        rot_kind="software",
        chain=[deviceid],
        deviceid_key=key.public_key(),
        signer=key.sign,
        signing_scalar=key.tls_private_scalar(),
        signing_point=key.public_key(),
    )


def measurement(component: str, digest: bytes) -> list[object]:
    return [60, cbor2.dumps([component, digest])]


def claims(device: Device, **changes: object) -> dict[int, object]:
    """The claims a healthy *device* states; ``changes`` by claim key name (None drops it)."""
    values: dict[str, object] = {
        "nonce": NONCE,
        "ueid": b"\x01" + hashlib.sha256(device.deviceid_key).digest(),
        "oemid": b"\x00\x1a\x2b",
        "hwmodel": hashlib.sha256(HWMODEL.encode()).digest(),
        "uptime": 42,
        "dbgstat": 3,
        "profile": PROFILE,
        "bootcount": BOOTCOUNT,
        "bootseed": BOOTSEED,
        "swname": "sevenfold-firmware",
        "swversion": [SWVERSION, 16384],
        "measurements": [measurement("image", IMAGE), measurement("config", CONFIG)],
        "svn": SVN,
        "rot": device.rot_kind,
    }
    values.update(changes)
    keys = {
        "nonce": 10,
        "ueid": 256,
        "oemid": 258,
        "hwmodel": 259,
        "uptime": 261,
        "dbgstat": 263,
        "profile": 265,
        "bootcount": 267,
        "bootseed": 268,
        "swname": 270,
        "swversion": 271,
        "measurements": 273,
        "svn": -70000,
        "rot": -70001,
    }
    out: dict[int, object] = {}
    for name, value in values.items():
        if value is not None:
            out[keys[name] if name in keys else int(name)] = value
    return out


def sign1(
    signer: Signer,
    payload: bytes | None,
    unprotected: dict[int, object],
    *,
    protected: bytes | None = None,
    signed_protected: bytes | None = None,
    tag: int = 18,
) -> bytes:
    """A COSE_Sign1 by cbor2; *signed_protected* is what the signature covers if not *protected*."""
    protected = cbor2.dumps({1: -7}) if protected is None else protected
    covered = protected if signed_protected is None else signed_protected
    to_be_signed = cbor2.dumps(["Signature1", covered, b"", payload or b""])
    return cbor2.dumps(cbor2.CBORTag(tag, [protected, unprotected, payload, signer(to_be_signed)]))


def token(device: Device, **changes: object) -> bytes:
    """A valid token of *device*, with claim *changes* (see :func:`claims`)."""
    payload = cbor2.dumps(claims(device, **changes))
    return sign1(device.signer, payload, {33: device.chain})


def pycose_token(device: Device, **changes: object) -> bytes:
    """The same token made whole by pycose (its encoder and its ES256 signer)."""
    assert device.signing_scalar is not None
    point = device.signing_point
    message = Sign1Message(
        phdr={Algorithm: Es256},
        uhdr={33: device.chain},
        payload=cbor2.dumps(claims(device, **changes)),
    )
    message.key = EC2Key(crv="P_256", x=point[1:33], y=point[33:], d=device.signing_scalar)
    encoded: bytes = message.encode(tag=True)
    return encoded


def endorsements(
    *, image: bytes = IMAGE, config: bytes | None = CONFIG, **image_fields: object
) -> list[Endorsement]:
    fields: dict[str, object] = {"swversion": SWVERSION, "security_version": SVN}
    fields.update(image_fields)
    out = [Endorsement(hwmodel=HWMODEL, component="image", digest=image, **fields)]  # type: ignore[arg-type]
    if config is not None:
        out.append(
            Endorsement(
                hwmodel=HWMODEL,
                component="config",
                digest=config,
                swversion=None,
                security_version=None,
            )
        )
    return out


def challenge(nonce: bytes = NONCE, issued_at: datetime | None = None) -> Challenge:
    return Challenge(nonce=nonce, issued_at=issued_at or datetime.now(UTC))
