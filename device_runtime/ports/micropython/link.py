"""The agent's ``Link`` port on MicroPython: recovery listener, then fleet listener.

A board that attests connects twice (docs/attestation.md): to the broker's
recovery listener with the DeviceID certificate the factory installed and the
DeviceID key, and, after a pass, to the fleet listener with the short-lived
fleet certificate it was given and the key that certificate names (the
evidence key: DICE's Alias key, else the DeviceID key).

The keys are a derived root of trust's (software or DICE): they exist only as
scalars in memory, and mbedTLS takes a key only as DER. So each key is encoded
here as a SEC1 ECPrivateKey (RFC 5915) and handed to the transport in memory;
it is never written to the filesystem. The fleet certificate is written to the
device's store, where the transport reads it on every connect. A hardware key
(a secure element) has no scalar to give and needs a TLS stack that signs
through it instead.
"""

from device_runtime.core import der
from device_runtime.core.errors import TransportError
from device_runtime.ports.micropython.transport import MqttTransport

TYPE_CHECKING = False
if TYPE_CHECKING:
    from device_runtime.ports.micropython.storage import DirectoryStore
    from device_runtime.rot.derived import DerivedRootOfTrust
    from device_runtime.rot.keys import DerivedKey

FLEET_CERTIFICATE = "fleet-certificate"
"""Store key of the fleet certificate of the last pass (DER)."""
EC_PRIVATE_KEY_VERSION = 1


def private_key_der(key: "DerivedKey") -> bytes:
    """SEC1 ECPrivateKey DER of a derived P-256 key, for mbedTLS only; never store or log it.

    With its public key, which RFC 5915 makes optional: MicroPython's mbedTLS
    does not derive it, and refuses a certificate whose key it cannot match.
    The root of trust computed the point already (the evidence names it).
    """
    return der.sequence(
        der.integer(EC_PRIVATE_KEY_VERSION),
        der.octet_string(key.tls_private_scalar()),
        der.context(0, der.oid(der.OID_PRIME256V1)),
        der.context(1, der.bit_string(key.public_key())),
    )


class MqttLink:
    """Where an attesting board connects, and with which credentials, on each listener."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        recovery_port: int,
        client_id: str,
        ca_path: str,
        deviceid_certificate_path: str,
        rot: "DerivedRootOfTrust",
        store: "DirectoryStore",
        server_hostname: str = "localhost",
    ) -> None:
        self.host = host
        self.port = port
        self.recovery_port = recovery_port
        self.client_id = client_id
        self.ca_path = ca_path
        self.deviceid_certificate_path = deviceid_certificate_path
        self.rot = rot
        self.store = store
        self.server_hostname = server_hostname

    def recovery(self) -> MqttTransport:
        """The recovery listener, as the factory certified the board: DeviceID certificate, key."""
        return self._transport(
            self.recovery_port, self.deviceid_certificate_path, self.rot.identity_key()
        )

    def fleet(self, certificate: bytes) -> MqttTransport:
        """The fleet listener with the certificate of this pass and the evidence key it names."""
        if not isinstance(certificate, bytes) or certificate[:1] != b"\x30":
            raise TransportError("the fleet certificate of this pass is not DER")
        self.store.write(FLEET_CERTIFICATE, certificate)
        path = self.store.directory + "/" + FLEET_CERTIFICATE
        return self._transport(self.port, path, self.rot.evidence_key())

    def _transport(self, port: int, certificate_path: str, key: "DerivedKey") -> MqttTransport:
        return MqttTransport(
            host=self.host,
            port=port,
            client_id=self.client_id,
            ca_path=self.ca_path,
            cert_path=certificate_path,
            key_der=private_key_der(key),
            server_hostname=self.server_hostname,
        )
