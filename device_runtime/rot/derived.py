"""The contract, implemented once for roots of trust whose keys are derived from a secret.

DICE and the software backend differ only in where their secrets come from
(a UDS and the firmware measurement, or a seed in a file); everything a caller
sees (keys, CSR, registers, counters, random bytes, sealing) is this class,
over the shared pieces in this package. Portable: CPython and MicroPython.

The counter, sealing and certificate code is imported on first use, as the
MicroPython crypto port imports the curve: a 64 KiB device that boots to sign
evidence should not hold in RAM the code it needs once, at the factory.
"""

from device_runtime.rot.registers import Registers

TYPE_CHECKING = False
if TYPE_CHECKING:
    from device_runtime.core.port_types import RandomBytes, Store
    from device_runtime.rot.counters import Counters
    from device_runtime.rot.keys import DerivedKey


class DerivedRootOfTrust:
    kind = ""

    def __init__(
        self,
        *,
        identity: "DerivedKey",
        attestation: "DerivedKey",
        sealing_secret: bytes,
        counter_key: bytes,
        store: "Store",
        random_bytes: "RandomBytes",
    ) -> None:
        self._identity = identity
        self._attestation = attestation
        self._sealing_secret = sealing_secret
        self._store = store
        self._counter_key = counter_key
        self._registers = Registers()
        self._random = random_bytes

    def identity_key(self) -> "DerivedKey":
        return self._identity

    def attestation_key(self) -> "DerivedKey":
        return self._attestation

    def evidence_key(self) -> "DerivedKey":
        """The DeviceID key, certified by the factory; DICE signs with its Alias key instead."""
        return self._identity

    def certificate_chain(self, deviceid_certificate: bytes, device_id: str) -> list[bytes]:
        """Just the DeviceID certificate: it certifies the evidence key itself."""
        return [deviceid_certificate]

    def csr(self, common_name: str) -> bytes:
        from device_runtime.rot import certificates

        return certificates.csr(self._identity, common_name)

    def extend(self, index: int, digest: bytes) -> bytes:
        return self._registers.extend(index, digest)

    def measurement(self, index: int) -> bytes:
        return self._registers.value(index)

    def _counters(self) -> "Counters":
        from device_runtime.rot.counters import Counters

        return Counters(self._store, self._counter_key)

    def counter(self, index: int) -> int:
        return self._counters().value(index)

    def increment(self, index: int) -> int:
        return self._counters().increment(index)

    def random_bytes(self, n: int) -> bytes:
        return self._random(n)

    def seal(self, secret: bytes) -> bytes:
        from device_runtime.rot import sealing

        nonce = self._random(sealing.NONCE_SIZE)
        return sealing.seal(self._sealing_secret, self._registers.all(), secret, nonce)

    def unseal(self, blob: bytes) -> bytes:
        from device_runtime.rot import sealing

        return sealing.unseal(self._sealing_secret, self._registers.all(), blob)
