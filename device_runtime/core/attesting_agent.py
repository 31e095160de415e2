"""The agent of a device that earns its broker access by attesting (docs/attestation.md).

At boot it connects through its link's recovery transport (the broker's
recovery listener, its DeviceID certificate), answers a challenge with
evidence and, on a pass, moves to the fleet transport with the short-lived
fleet certificate it was given. It attests again when three quarters of that
certificate's life are gone, whenever the server pushes ``attest-now``, and
through the recovery listener again when a reconnect finds the certificate
expired. A contraindicated answer is raised (``Contraindicated``): the device
keeps only its attestation topics. Runs unchanged under MicroPython.
"""

from device_runtime.core import protocol
from device_runtime.core.agent import DeviceAgent
from device_runtime.core.errors import Contraindicated, InvalidField, ProtocolError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from device_runtime.core.port_types import Evidence, Link

RENEW_AT = 3
RENEW_OF = 4
"""A fleet certificate is renewed once RENEW_AT / RENEW_OF of its lifetime has passed."""


class AttestingAgent(DeviceAgent):
    """A :class:`DeviceAgent` whose transport comes from a link and whose access is a pass."""

    def __init__(self, *, link: "Link", evidence: "Evidence", **settings: object) -> None:
        super().__init__(transport=link.recovery(), **settings)  # type: ignore[arg-type]
        self.link = link
        self.evidence = evidence
        self.on_fleet = False
        self.certificate = b""
        self.verdict: "dict[str, object]" = {}
        """The server's answer to the last evidence, a refusal included."""
        self.renew_at_ms = 0
        self.expires_ms = 0

    def boot(self) -> int:
        count = super().boot()
        self.attest()
        return count

    def _connect(self) -> None:
        """Connect and subscribe to the planes this connection carries."""
        self.transport.connect()
        self.transport.subscribe(protocol.topic(self.prefix, self.device_id, "att/down"))
        if self.on_fleet:
            self.transport.subscribe(protocol.topic(self.prefix, self.device_id, "down"))

    def attest(self) -> "dict[str, object]":
        """Challenge, evidence, and on a pass the fleet listener with the new certificate."""
        nonce = self.request("challenge", {})["nonce"]
        uptime = (self.clock.monotonic_ms() - self.started_ms) // 1000
        answer = self.request("evidence", self.evidence.body(nonce, self.boot_count, uptime))  # type: ignore[arg-type]
        self.verdict = answer
        if answer["status"] == "contraindicated":
            raise Contraindicated(str(answer["code"]) + ": " + str(answer["reason"]))
        certificate = answer.get("certificate")
        not_after = answer.get("not_after")
        now = answer["server_time"]
        if not isinstance(certificate, bytes) or not isinstance(not_after, int):
            raise InvalidField("evidence: a pass came without its certificate")
        lifetime = not_after - now  # type: ignore[operator]
        if lifetime <= 0:
            raise InvalidField("evidence: the certificate of this pass has already expired")
        started = self.clock.monotonic_ms()
        self.renew_at_ms = started + lifetime * 1000 * RENEW_AT // RENEW_OF
        self.expires_ms = started + lifetime * 1000
        self.certificate = certificate
        self.transport.close()
        self.transport = self.link.fleet(certificate)
        self.on_fleet = True
        self._connect()
        return answer

    def _before_heartbeat(self) -> None:
        if self.clock.monotonic_ms() >= self.renew_at_ms:
            self.attest()

    def _idle(self, ms: int) -> None:
        """Wait *ms* listening for the server's ``attest-now``, which makes the renewal due."""
        deadline = self.clock.monotonic_ms() + ms
        while True:
            left = deadline - self.clock.monotonic_ms()
            if left <= 0:
                return
            asked = self.clock.monotonic_ms()
            received = self.transport.poll(left)
            if received is None:
                if self.clock.monotonic_ms() == asked:
                    self.clock.sleep_ms(min(left, 10))  # a transport that never waits
                continue
            try:
                envelope = protocol.decode(received[1], protocol.MAX_DOWN_MESSAGE)
            except ProtocolError:
                continue
            if envelope.kind == "attest-now":
                self.renew_at_ms = 0
                return

    def _reconnect(self) -> None:
        """Back to the recovery listener to attest there once the fleet certificate expired
        (the fleet listener would refuse its handshake); else as any agent."""
        if self.on_fleet and self.clock.monotonic_ms() >= self.expires_ms:
            self.transport.close()
            self.transport = self.link.recovery()
            self.on_fleet = False
            self._connect()
            self.attest()
            return
        super()._reconnect()
