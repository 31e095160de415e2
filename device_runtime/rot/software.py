"""Software root of trust: keys derived from a seed kept in a file. DEVELOPMENT ONLY.

It exists so that the simulator and CI can run the full protocol without
hardware. Its seed (32 random bytes, written once through the Store port: a
0600 file on CPython) is all an attacker with the device's filesystem needs to
clone it, so it reports ``kind = "software"`` everywhere (its evidence, its
``describe()``), and the production policy refuses it. Everything a caller
sees is the shared implementation in ``device_runtime.rot.derived``; runs on
CPython and MicroPython.
"""

from device_runtime.core.errors import RootOfTrustError
from device_runtime.core.hkdf import hkdf
from device_runtime.rot.derived import DerivedRootOfTrust
from device_runtime.rot.keys import derive_key

TYPE_CHECKING = False
if TYPE_CHECKING:
    from device_runtime.core.port_types import RandomBytes, SignEs256, Store

KIND = "software"
SEED_KEY = "rot-software-seed"
SEED_SIZE = 32
DESCRIPTION = "software root of trust (development only: its keys live in a file)"


class SoftwareRootOfTrust(DerivedRootOfTrust):
    """Development only: file-backed keys, no protection against anyone who can read the file."""

    kind = KIND

    @classmethod
    def open(
        cls, *, store: "Store", random_bytes: "RandomBytes", sign_es256: "SignEs256"
    ) -> "SoftwareRootOfTrust":
        """Re-derive the keys from the stored seed, creating the seed on first boot."""
        seed = store.read(SEED_KEY)
        if seed is None:
            seed = random_bytes(SEED_SIZE)
            store.write(SEED_KEY, seed)
        if len(seed) != SEED_SIZE:
            raise RootOfTrustError(
                "software root of trust (development only): its seed is damaged ("
                + str(len(seed))
                + " bytes)"
            )
        return cls(
            identity=derive_key(seed, b"", b"sevenfold software identity", sign_es256),
            attestation=derive_key(seed, b"", b"sevenfold software attestation", sign_es256),
            sealing_secret=hkdf(seed, b"", b"sevenfold software sealing", 32),
            counter_key=hkdf(seed, b"", b"sevenfold software counters", 32),
            store=store,
            random_bytes=random_bytes,
        )

    def describe(self) -> str:
        return DESCRIPTION
