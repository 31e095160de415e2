"""Devices on other hosts reach the managed broker under the names its certificate lists."""

from __future__ import annotations

import ipaddress
import socket
import ssl
from pathlib import Path

import pytest
from cryptography import x509

from fleet_platform.broker import MosquittoBroker, _connect_packet
from fleet_platform.broker_config import BrokerError, check_listen_address, config_text
from fleet_platform.pki import CertificateAuthority, IssuedCredential
from tests.broker_fixtures import MqttSession, StartBroker, session_to
from tests.network_addresses import SECOND_LOOPBACK, DeviceSide, device_side
from tests.strict_mode import missing

NAME = "broker.fleet.test"


@pytest.fixture(scope="module", params=["this machine's address", "a second loopback address"])
def side(request: pytest.FixtureRequest) -> DeviceSide:
    """The machine's own way in, and the stand-in a loopback-only machine would use."""
    if request.param == "this machine's address":
        return device_side()
    return DeviceSide(listen=SECOND_LOOPBACK, address=SECOND_LOOPBACK)


def connack(address: str, port: int, context: ssl.SSLContext, *, server_hostname: str) -> int:
    """CONNACK's return code for an MQTT 3.1.1 CONNECT to *address*, verifying *server_hostname*."""
    with (
        socket.create_connection((address, port), timeout=5.0) as raw,
        context.wrap_socket(raw, server_hostname=server_hostname) as tls,
    ):
        tls.sendall(_connect_packet("reach-test"))
        reply = b""
        while len(reply) < 4:
            chunk = tls.recv(4 - len(reply))
            assert chunk, "closed before CONNACK"
            reply += chunk
        assert reply[:2] == b"\x20\x02", reply.hex()
        return reply[3]


def certificate_names(broker: MosquittoBroker) -> list[str]:
    certificate = x509.load_pem_x509_certificate(
        (broker.directory / "sevenfold-broker.pem").read_bytes()
    )
    alt = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return [str(name.value) for name in alt]


def credential(authority: CertificateAuthority, tmp_path: Path, name: str) -> IssuedCredential:
    return authority.issue_client(common_name=name, directory=tmp_path / "clients", days=1)


def test_a_device_on_the_network_reaches_the_broker_under_its_name(
    fleet_ca: CertificateAuthority, start_broker: StartBroker, tmp_path: Path, side: DeviceSide
) -> None:
    with start_broker(listen=side.listen, names=(NAME, side.address), grants=["dev-far"]) as broker:
        # The start-up probe reached it on this machine: loopback, or the one address.
        assert broker.host == ("127.0.0.1" if side.every_interface else side.address)
        assert broker.advertised_host == NAME
        assert {"127.0.0.1", "localhost", NAME, side.address} == set(certificate_names(broker))
        device = credential(fleet_ca, tmp_path, "dev-far")
        context = broker.client_context(device)
        assert connack(side.address, broker.port, context, server_hostname=NAME) == 0
        with pytest.raises(ssl.SSLCertVerificationError):
            connack(side.address, broker.port, context, server_hostname="other.fleet.test")
        # A whole MQTT exchange over the network address: the server hears the device.
        server_credential = credential(fleet_ca, tmp_path, "sevenfold-server")
        server = session_to(broker, server_credential, client_id="sevenfold-server")
        far = MqttSession(host=side.address, port=broker.port, context=context, client_id="dev-far")
        try:
            assert server.accepted()
            assert server.subscribe("sevenfold/d/+/up") == [1]
            assert far.open().accepted()
            far.publish("sevenfold/d/dev-far/up", b"hello from afar")
            assert server.receive() == ("sevenfold/d/dev-far/up", b"hello from afar")
        finally:
            far.close()
            server.close()


def test_a_loopback_broker_cannot_be_reached_from_the_network(
    start_broker: StartBroker, side: DeviceSide
) -> None:
    with start_broker() as broker:
        assert (broker.listen, broker.host, broker.advertised_host) == ("127.0.0.1",) * 3
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((side.address, broker.port), timeout=5.0).close()


def test_listening_on_one_address_probes_and_certifies_that_address(
    fleet_ca: CertificateAuthority, start_broker: StartBroker, tmp_path: Path, side: DeviceSide
) -> None:
    with start_broker(listen=side.address) as broker:
        assert broker.host == broker.advertised_host == side.address
        assert side.address in certificate_names(broker)
        config = broker.config_path.read_text().splitlines()
        assert f"listener {broker.port} {side.address}" in config
        assert f"listener {broker.recovery_port} {side.address}" in config
        context = broker.client_context(credential(fleet_ca, tmp_path, "dev-near"))
        assert connack(side.address, broker.port, context, server_hostname=side.address) == 0
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", broker.port), timeout=5.0).close()


def _ipv6_loopback() -> bool:
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("::1", 0))
        except OSError:
            return False
    return True


def test_every_interface_in_ipv6_spelling_takes_both_families(
    fleet_ca: CertificateAuthority, start_broker: StartBroker, tmp_path: Path
) -> None:
    with start_broker(listen="::") as broker:
        assert broker.host == broker.advertised_host == "127.0.0.1"
        config = broker.config_path.read_text().splitlines()
        assert {f"listener {broker.port}", f"listener {broker.recovery_port}"} <= set(config)
        assert broker.name == f"mosquitto on [::]:{broker.port}"
        context = broker.client_context(credential(fleet_ca, tmp_path, "dev-v6"))
        assert connack("127.0.0.1", broker.port, context, server_hostname="localhost") == 0
        if _ipv6_loopback():
            assert connack("::1", broker.port, context, server_hostname="localhost") == 0


def test_a_restart_with_other_names_reissues_the_certificate(
    fleet_ca: CertificateAuthority, start_broker: StartBroker, tmp_path: Path
) -> None:
    """Both start in the same state directory, as the server does after a restart."""
    device = credential(fleet_ca, tmp_path, "dev-moved")
    with start_broker(names=("old.fleet.test",)) as broker:
        context = broker.client_context(device)
        assert connack(broker.host, broker.port, context, server_hostname="old.fleet.test") == 0
    with start_broker(names=("new.fleet.test",)) as broker:
        context = broker.client_context(device)
        assert connack(broker.host, broker.port, context, server_hostname="new.fleet.test") == 0
        with pytest.raises(ssl.SSLCertVerificationError):
            connack(broker.host, broker.port, context, server_hostname="old.fleet.test")
        assert "old.fleet.test" not in certificate_names(broker)


@pytest.mark.parametrize(
    ("given", "spelled"),
    [("0.0.0.0", "0.0.0.0"), ("0:0::0", "::"), ("FD00::2", "fd00::2"), ("127.0.0.2", "127.0.0.2")],
)
def test_listen_addresses_are_written_in_their_usual_spelling(given: str, spelled: str) -> None:
    assert check_listen_address(given) == spelled
    assert ipaddress.ip_address(spelled) == ipaddress.ip_address(given)


def test_config_text_refuses_a_listen_address_it_cannot_write(tmp_path: Path) -> None:
    from fleet_platform.broker_config import BrokerFiles

    files = BrokerFiles(
        ca_path=tmp_path / "ca.pem",
        cert_path=tmp_path / "c.pem",
        key_path=tmp_path / "c.key",
        acl_path=tmp_path / "acl",
        recovery_ca_path=tmp_path / "recovery-ca.pem",
        recovery_acl_path=tmp_path / "recovery.acl",
    )
    with pytest.raises(BrokerError, match="not an IP address"):
        config_text(
            port=8883,
            recovery_port=8884,
            prefix="sevenfold",
            files=files,
            run_as="me",
            listen="0.0.0.0\nx",
        )


def test_one_ipv6_address(
    fleet_ca: CertificateAuthority, start_broker: StartBroker, tmp_path: Path
) -> None:
    if not _ipv6_loopback():
        missing("IPv6 loopback", "enable IPv6 on the loopback interface")
    with start_broker(listen="::1") as broker:
        assert broker.host == "::1" and "::1" in certificate_names(broker)
        assert broker.name == f"mosquitto on [::1]:{broker.port}"
        context = broker.client_context(credential(fleet_ca, tmp_path, "dev-v6-only"))
        assert connack("::1", broker.port, context, server_hostname="::1") == 0
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", broker.port), timeout=5.0).close()
