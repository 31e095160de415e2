"""Starting and stopping the managed broker, and the specific errors when that fails."""

from __future__ import annotations

import socket
import stat
from pathlib import Path

import pytest

from device_runtime.core import protocol
from device_runtime.core.errors import InvalidField
from fleet_platform.broker import MosquittoBroker
from fleet_platform.broker_config import (
    DEFAULT_BROKER_PORT,
    LONGEST_DEVICE_ID,
    BrokerError,
    BrokerPortTaken,
    acl_text,
    check_server_identity,
    max_packet_size,
)
from fleet_platform.pki import CertificateAuthority
from tests.components import binary, free_port


@pytest.fixture
def mosquitto() -> str:
    return binary("mosquitto")


def accepts_tcp(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_start_writes_private_files_and_stop_closes_port(
    fleet_ca: CertificateAuthority, mosquitto: str, tmp_path: Path
) -> None:
    port = free_port()
    broker = MosquittoBroker.start(
        directory=tmp_path / "b", authority=fleet_ca, port=port, mosquitto=mosquitto
    )
    try:
        assert (broker.host, broker.port) == ("127.0.0.1", port)
        assert broker.running and accepts_tcp(port)
        assert broker.ca_path.read_bytes() == fleet_ca.cert_path.read_bytes()
        for name in ("sevenfold-broker.key", "acl", "mosquitto.conf"):
            assert stat.S_IMODE((broker.directory / name).stat().st_mode) == 0o600
        config = (broker.directory / "mosquitto.conf").read_text()
        for line in (
            f"listener {port} 127.0.0.1",
            "require_certificate true",
            "use_identity_as_username true",
            "allow_anonymous false",
            "persistence false",
            "tls_version tlsv1.2",
            f"max_packet_size {max_packet_size('sevenfold')}",
        ):
            assert line in config.splitlines()
        # The probe got in (start returned), and like every connection it was not logged.
        assert "broker-probe" not in broker.log_tail()
        assert stat.S_IMODE(broker.log_path.stat().st_mode) == 0o600
    finally:
        broker.stop()
    assert not broker.running
    assert not accepts_tcp(port)
    broker.stop()


def test_context_manager_stops_the_process(
    fleet_ca: CertificateAuthority, mosquitto: str, tmp_path: Path
) -> None:
    with MosquittoBroker.start(directory=tmp_path, authority=fleet_ca, mosquitto=mosquitto) as b:
        assert b.running
    assert not b.running


def test_acl_uses_certificate_identity_only() -> None:
    text = acl_text(
        prefix="sevenfold", server_identities=("sevenfold-server", "sevenfold-server.1")
    )
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert lines == [
        "user sevenfold-server",
        "topic readwrite sevenfold/d/#",
        "user sevenfold-server.1",
        "topic readwrite sevenfold/d/#",
        "pattern write sevenfold/d/%u/up",
        "pattern read sevenfold/d/%u/down",
    ]
    assert "%c" not in text


@pytest.mark.parametrize(
    "options",
    [
        {"prefix": "a/+/b"},
        {"prefix": "#"},
        {"prefix": "/lead"},
        {"prefix": "trail/"},
        {"prefix": ""},
        {"server_identities": ()},
        {"server_identities": ("two words",)},
        {"server_identities": ("wild/+",)},
        {"server_identities": ("backup",)},
        {"server_identities": ("sevenfold-server", "sevenfold-server")},
        {"port": 0},
        {"port": 70000},
        {"mosquitto": "/nonexistent/mosquitto"},
        {"listen": "broker.fleet.test"},
        {"listen": ""},
        {"listen": "127.0.0.1:8883"},
        {"listen": "224.0.0.1"},
        {"listen": "fe80::1%eth0"},
        {"listen": 5},
        {"names": ("two words",)},
        {"names": ("*.fleet.test",)},
        {"names": ("a..b",)},
        {"names": ("a." * 127 + "b",)},
        {"names": ("",)},
        {"names": "broker.fleet.test"},
    ],
)
def test_bad_settings_raise_broker_error(
    fleet_ca: CertificateAuthority, tmp_path: Path, options: dict[str, object]
) -> None:
    with pytest.raises(BrokerError):
        MosquittoBroker.start(directory=tmp_path, authority=fleet_ca, **options)  # type: ignore[arg-type]
    assert not (tmp_path / "mosquitto.conf").exists()


def test_port_in_use_names_the_port_the_option_and_mosquittos_own_words(
    fleet_ca: CertificateAuthority, mosquitto: str, tmp_path: Path
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(BrokerPortTaken) as caught:
            MosquittoBroker.start(
                directory=tmp_path, authority=fleet_ca, port=port, mosquitto=mosquitto
            )
    assert caught.value.port == port
    assert caught.value.code == "broker-port-taken"
    message = caught.value.explain()
    assert f"port {port} on 127.0.0.1 is already in use" in message
    assert "--broker-port" in message
    assert "Address already in use" in message


def test_default_port_is_mqtt_over_tls() -> None:
    assert DEFAULT_BROKER_PORT == 8883


@pytest.mark.parametrize(
    "identity", ["sevenfold-server", "sevenfold-server.1", "sevenfold-server.12", "ops.eu-1"]
)
def test_server_identities_no_device_can_hold(identity: str) -> None:
    assert check_server_identity(identity) == identity
    with pytest.raises(InvalidField):
        protocol.check_device_id(identity)


@pytest.mark.parametrize("identity", ["sevenfold-server-2", "backup", "ops-a", "a" * 63])
def test_server_identity_that_is_also_a_device_id_is_refused(identity: str) -> None:
    protocol.check_device_id(identity)
    with pytest.raises(BrokerError, match="also a valid device id"):
        check_server_identity(identity)


def test_longest_device_id_is_the_protocols() -> None:
    protocol.check_device_id("a" * LONGEST_DEVICE_ID)
    with pytest.raises(InvalidField):
        protocol.check_device_id("a" * (LONGEST_DEVICE_ID + 1))


def test_packet_limit_follows_the_prefix_and_the_protocol_limit() -> None:
    longer = "plant7/fleet"
    assert max_packet_size(longer) - max_packet_size("sevenfold") == len(longer) - len("sevenfold")
    assert max_packet_size("sevenfold") > protocol.MAX_MESSAGE
    with pytest.raises(BrokerError):
        max_packet_size("a/+")


def test_broker_that_never_listens_times_out(
    fleet_ca: CertificateAuthority, tmp_path: Path
) -> None:
    silent = tmp_path / "silent-broker"
    silent.write_text('#!/bin/sh\necho "stuck loading $2"\nexec sleep 30\n')
    silent.chmod(0o755)
    with pytest.raises(BrokerError, match=r"(?s)within 0.5s.*stuck loading"):
        MosquittoBroker.start(
            directory=tmp_path / "b",
            authority=fleet_ca,
            mosquitto=str(silent),
            ready_timeout=0.5,
        )


def test_unreadable_ca_gives_broker_error(mosquitto: str, tmp_path: Path) -> None:
    authority = CertificateAuthority.create(common_name="Gone", directory=tmp_path / "ca")
    authority.cert_path.unlink()
    with pytest.raises(BrokerError, match="cannot prepare"):
        MosquittoBroker.start(directory=tmp_path / "b", authority=authority, mosquitto=mosquitto)
