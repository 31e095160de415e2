"""What a device answers when challenged: its evidence, made by its root of trust.

Built once per boot: the boot seed is drawn here, so every token of one boot
carries the same seed and the verifier can tell two live instances of one
identity apart (same boot count, different seeds). The measurements are what
the first stage (DICE) or the platform (TPM, into PCRs 8 and 9 with
``evidence.measure_boot``) took before this code ran; the attestor only
reports them, and the verifier trusts them only as far as the root of trust
binds them (docs/eat-profile.md). Runs unchanged under MicroPython.
"""

from device_runtime.core import evidence

TYPE_CHECKING = False
if TYPE_CHECKING:
    from device_runtime.core.port_types import RootOfTrust

QUOTED_REGISTERS = (0, 1)
"""The measurement registers a TPM quote covers: the image, then the configuration."""


class Attestor:
    """One boot's evidence maker (the agent's ``Evidence`` port)."""

    def __init__(
        self,
        *,
        rot: "RootOfTrust",
        device_id: str,
        deviceid_certificate: bytes,
        hwmodel: str,
        swname: str,
        swversion: str,
        security_version: int,
        oemid: bytes,
        dbgstat: int,
        image_digest: bytes,
        config_digest: bytes,
    ) -> None:
        self.rot = rot
        self.device_id = device_id
        self.deviceid_certificate = deviceid_certificate
        self.hwmodel = hwmodel
        self.swname = swname
        self.swversion = swversion
        self.security_version = security_version
        self.oemid = oemid
        self.dbgstat = dbgstat
        self.image_digest = image_digest
        self.config_digest = config_digest
        self.bootseed = rot.random_bytes(32)

    def body(self, nonce: bytes, bootcount: int, uptime: int) -> "dict[str, object]":
        """The ``evidence`` request body for *nonce*: the token, and a TPM's quote beside it."""
        token = evidence.token(
            self.rot,
            nonce=nonce,
            deviceid_certificate=self.deviceid_certificate,
            device_id=self.device_id,
            hwmodel=self.hwmodel,
            swname=self.swname,
            swversion=self.swversion,
            security_version=self.security_version,
            oemid=self.oemid,
            dbgstat=self.dbgstat,
            bootcount=bootcount,
            bootseed=self.bootseed,
            uptime=uptime,
            image_digest=self.image_digest,
            config_digest=self.config_digest,
        )
        body: "dict[str, object]" = {"token": token}
        quote = getattr(self.rot, "quote", None)
        if quote is not None:
            attest, signature = quote(nonce, QUOTED_REGISTERS)
            body["quote"] = attest
            body["quote_signature"] = signature
        return body
