"""DICE layered identity (TCG DICE), portable: CPython and MicroPython.

The unique device secret (UDS, 32 random bytes) is written once, at
manufacture (:func:`manufacture`), through its own Store (a 0600 file on
CPython). :meth:`DiceRootOfTrust.boot` is the first stage: it reads the UDS and
derives, with HKDF-SHA256 (``core.hkdf``):

* DeviceID key material from the UDS alone, so the DeviceID key (the identity
  the factory certifies) stays the same across firmware versions;
* CDI = HKDF(IKM = UDS, salt = measurement of the next layer), and from the CDI
  the Alias key (the attestation key) and the sealing secret, which change
  whenever the firmware measurement does;
* the counter record's MAC key from the UDS alone (counters must survive
  firmware updates: anti-rollback stands on them).

Then it drops the UDS: the returned object holds derived keys only and has no
reference to the UDS store, so later layers, which are handed that object,
have no path to the UDS through it. The Alias certificate is issued on the
device by the DeviceID key and carries the DiceTcbInfo extension.

What this simulation protects against, and what it does not (compared with a
UDS in fuses and a first stage in ROM, where hardware latches the UDS away
until the next reset): it keeps the UDS out of the runtime's API, so a bug or
a compromised application that only holds the root of trust cannot derive
another firmware's Alias key or sealing keys, and it makes a firmware change
visible as a new Alias key. It does NOT protect against anyone who can read
the UDS file (root, the same Unix user, a copied disk image), against code
running in the same process reading its memory, or against a modified first
stage: the file and the first stage are only as protected as the operating
system and filesystem around them. Python cannot erase the bytes it read, so
the UDS may linger in freed memory until it is reused.
"""

from device_runtime.core.errors import RootOfTrustError
from device_runtime.core.hkdf import hkdf
from device_runtime.rot.derived import DerivedRootOfTrust
from device_runtime.rot.keys import derive_key

TYPE_CHECKING = False
if TYPE_CHECKING:
    from device_runtime.core.port_types import RandomBytes, SignEs256, Store
    from device_runtime.rot.keys import DerivedKey

KIND = "dice"
UDS_KEY = "dice-uds"
UDS_SIZE = 32
ALIAS_LAYER = 1
"""Layer 0 is the first stage (ROM on real hardware); the firmware it measures is layer 1."""


def manufacture(uds_store: "Store", random_bytes: "RandomBytes") -> None:
    """Write a fresh UDS; refused if the device has one (a UDS is written once)."""
    if uds_store.read(UDS_KEY) is not None:
        raise RootOfTrustError("this device already has a UDS; it is written once, at manufacture")
    uds_store.write(UDS_KEY, random_bytes(UDS_SIZE))


class DiceRootOfTrust(DerivedRootOfTrust):
    kind = KIND

    @classmethod
    def boot(
        cls,
        *,
        uds_store: "Store",
        store: "Store",
        firmware_measurement: bytes,
        vendor: str,
        model: str,
        version: str,
        svn: int,
        random_bytes: "RandomBytes",
        sign_es256: "SignEs256",
    ) -> "DiceRootOfTrust":
        """The first stage: UDS + measurement of the firmware -> DeviceID, CDI, Alias.

        *store* keeps the counters; *uds_store* is read here and never again.
        """
        if (
            not isinstance(firmware_measurement, (bytes, bytearray))
            or len(firmware_measurement) != 32
        ):
            raise RootOfTrustError("the firmware measurement is a 32-byte SHA-256 digest")
        uds = uds_store.read(UDS_KEY)
        if uds is None:
            raise RootOfTrustError("no UDS: this device was never manufactured")
        if len(uds) != UDS_SIZE:
            raise RootOfTrustError("the UDS is damaged (" + str(len(uds)) + " bytes, not 32)")
        identity = derive_key(uds, b"", b"DICE DeviceID", sign_es256)
        counter_key = hkdf(uds, b"", b"DICE counters", 32)
        cdi = hkdf(uds, bytes(firmware_measurement), b"DICE CDI", 32)
        uds = b""
        rot = cls(
            identity=identity,
            attestation=derive_key(cdi, b"", b"DICE Alias", sign_es256),
            sealing_secret=hkdf(cdi, b"", b"DICE sealing", 32),
            counter_key=counter_key,
            store=store,
            random_bytes=random_bytes,
        )
        rot._tcb = (vendor, model, version, svn, bytes(firmware_measurement))
        return rot

    _tcb: "tuple[str, str, str, int, bytes]" = ("", "", "", 0, b"")
    _chain: "tuple[bytes, str, bytes]" = (b"", "", b"")

    def describe(self) -> str:
        return "DICE root of trust (UDS in a file, first stage in software; see docs)"

    def evidence_key(self) -> "DerivedKey":
        """The Alias key: derived from the firmware measurement, so only this firmware has it."""
        return self._attestation

    def certificate_chain(self, deviceid_certificate: bytes, device_id: str) -> list[bytes]:
        """Leaf first: the Alias certificate (CN = *device_id*), issued here by the DeviceID
        key, then the DeviceID certificate it chains to. The Alias certificate's
        DiceTcbInfo states vendor, model, version, svn, the layer (1) and the
        firmware measurement as a SHA-256 FWID.

        Everything in it is fixed for the boot, so it is issued once and kept: each
        token then costs one signature, and a small heap is not fragmented by a
        certificate built anew between two tokens."""
        issued_to, named, alias = self._chain
        if issued_to != deviceid_certificate or named != device_id:
            from device_runtime.rot import certificates

            vendor, model, version, svn, fwid = self._tcb
            tcb = certificates.tcb_info(vendor, model, version, svn, ALIAS_LAYER, fwid)
            alias = certificates.alias_certificate(
                self._identity, deviceid_certificate, self._attestation, device_id, tcb
            )
            self._chain = (deviceid_certificate, device_id, alias)
        return [alias, deviceid_certificate]
