"""A fleet Mosquitto on one fixed port that a test can take away and bring back.

Devices and servers reconnect to the same address, as they would after a
real broker restart; the broker keeps the fleet's mutual-TLS and ACL policy
(it is a ``MosquittoBroker`` each time), and the devices granted so far.
"""

from __future__ import annotations

import time
from pathlib import Path

from fleet_platform.broker import MosquittoBroker
from fleet_platform.pki import CertificateAuthority
from tests.broker_fixtures import MqttSession
from tests.components import binary, free_port


class RestartableBroker:
    def __init__(self, authority: CertificateAuthority, directory: Path) -> None:
        self.authority = authority
        self.directory = directory
        self.port = free_port()
        self.mosquitto = binary("mosquitto")
        self.broker: MosquittoBroker | None = None
        self.restarted_at = 0.0
        self.granted: set[str] = set()
        self.start()

    def start(self) -> None:
        self.broker = MosquittoBroker.start(
            directory=self.directory,
            authority=self.authority,
            port=self.port,
            grants=self.granted,
            mosquitto=self.mosquitto,
        )

    def grant(self, *device_ids: str) -> None:
        """Give *device_ids* the application plane, now and after every restart."""
        self.granted.update(device_ids)
        if self.broker is not None:
            self.broker.apply_grants(self.granted)

    def stop(self) -> None:
        """Stop the broker; safe to call when it is already stopped."""
        if self.broker is not None:
            self.broker.stop()
            self.broker = None

    def restart(self, outage_s: float = 0.0) -> None:
        """Stop, leave everyone without a broker for *outage_s*, start again on the same port."""
        self.stop()
        time.sleep(outage_s)
        self.start()
        self.restarted_at = time.monotonic()

    def server_session(self, client_id: str) -> MqttSession:
        """A connected session with the server's identity, which may publish to any device."""
        assert self.broker is not None
        credential = self.authority.issue_client(
            common_name="sevenfold-server", directory=self.directory / "server", days=1
        )
        session = MqttSession(
            host=self.broker.host,
            port=self.port,
            context=self.broker.client_context(credential),
            client_id=client_id,
        ).open()
        assert session.accepted()
        return session
