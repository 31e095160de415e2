"""What an attesting MicroPython board does before it talks to anyone: measure its boot.

The configuration names the DeviceID certificate, the broker's recovery port,
the root of trust (``rot``: ``dice`` or ``software``, its state in ``rot_dir``;
a DICE UDS in ``rot_dir/uds``, as the simulator keeps it) and the image the
board runs. The image file and the configuration file are measured (SHA-256)
into the root of trust: on DICE the image digest is the firmware measurement
the Alias key is derived from, as a first stage in ROM would take it. The
result is the agent's ``Link`` and ``Evidence`` ports (docs/attestation.md).
"""

import hashlib

from device_runtime.core import evidence
from device_runtime.core.attestor import Attestor
from device_runtime.core.errors import ConfigError
from device_runtime.ports.micropython.crypto import random_bytes, sign_es256
from device_runtime.ports.micropython.link import MqttLink
from device_runtime.ports.micropython.storage import DirectoryStore
from device_runtime.ports.micropython.transport import der_blocks

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from device_runtime.rot.derived import DerivedRootOfTrust

SETTINGS = (
    "deviceid_cert",
    "recovery_port",
    "rot_dir",
    "image",
    "security_version",
    "oemid",
    "dbgstat",
)
CHUNK = 512
"""Bytes of the image hashed at a time: a board's heap never holds the whole image."""


def file_digest(path: str) -> bytes:
    """SHA-256 of the file at *path*, read in CHUNK-byte pieces."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while True:
            piece = handle.read(CHUNK)
            if not piece:
                return digest.digest()
            digest.update(piece)


def attesting(
    config: "dict[str, Any]", raw_config: bytes, store: DirectoryStore
) -> "tuple[MqttLink, Attestor]":
    """Open the root of trust, measure the boot into it, and make the link and the attestor.

    *raw_config* is the configuration file as read, measured byte for byte.
    """
    missing = [name for name in SETTINGS if name not in config]
    if missing:
        raise ConfigError("an attesting board's configuration lacks " + ", ".join(missing))
    image = file_digest(config["image"])
    config_digest = hashlib.sha256(raw_config).digest()
    rot_store = DirectoryStore(directory=config["rot_dir"])
    rot: "DerivedRootOfTrust"
    if config["rot"] == "dice":
        from device_runtime.rot import dice

        rot = dice.DiceRootOfTrust.boot(
            uds_store=DirectoryStore(directory=config["rot_dir"] + "/uds"),
            store=rot_store,
            firmware_measurement=image,
            vendor="Sevenfold",
            model=config["hwmodel"],
            version=config["swversion"],
            svn=config["security_version"],
            random_bytes=random_bytes,
            sign_es256=sign_es256,
        )
    elif config["rot"] == "software":
        from device_runtime.rot.software import SoftwareRootOfTrust

        rot = SoftwareRootOfTrust.open(
            store=rot_store, random_bytes=random_bytes, sign_es256=sign_es256
        )
    else:
        raise ConfigError("a MicroPython board attests with a dice or a software root of trust")
    evidence.measure_boot(rot, image, config_digest)
    with open(config["deviceid_cert"], "rb") as handle:
        deviceid = der_blocks(handle.read(), "DeviceID certificate")[0]
    link = MqttLink(
        host=config["host"],
        port=config["port"],
        recovery_port=config["recovery_port"],
        client_id=config["device_id"],
        ca_path=config["ca"],
        deviceid_certificate_path=config["deviceid_cert"],
        rot=rot,
        store=store,
        server_hostname=config.get("server_hostname", "localhost"),
    )
    attestor = Attestor(
        rot=rot,
        device_id=config["device_id"],
        deviceid_certificate=deviceid,
        hwmodel=config["hwmodel"],
        swname=config["swname"],
        swversion=config["swversion"],
        security_version=config["security_version"],
        oemid=bytes.fromhex(config["oemid"]),
        dbgstat=config["dbgstat"],
        image_digest=image,
        config_digest=config_digest,
    )
    return link, attestor
