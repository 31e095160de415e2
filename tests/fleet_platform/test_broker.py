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
    DEFAULT_RECOVERY_PORT,
    LONGEST_DEVICE_ID,
    BrokerError,
    BrokerPortTaken,
    acl_text,
    check_granted,
    check_server_identity,
    max_packet_size,
    recovery_acl_text,
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
        for name in (
            "sevenfold-broker.key",
            "acl",
            "recovery.acl",
            "recovery-ca.pem",
            "mosquitto.conf",
        ):
            assert stat.S_IMODE((broker.directory / name).stat().st_mode) == 0o600
        # No manufacturer CA given: the recovery listener trusts the fleet CA, never nothing.
        assert (
            broker.directory / "recovery-ca.pem"
        ).read_bytes() == fleet_ca.cert_path.read_bytes()
        config = (broker.directory / "mosquitto.conf").read_text()
        assert broker.recovery_port not in (port, None)
        for line in (
            f"listener {port} 127.0.0.1",
            f"listener {broker.recovery_port} 127.0.0.1",
            "per_listener_settings true",
            "mount_point recovery/",
            f"acl_file {broker.directory / 'acl'}",
            f"acl_file {broker.directory / 'recovery.acl'}",
            f"cafile {broker.directory / 'recovery-ca.pem'}",
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


def test_fleet_acl_grants_attestation_to_all_and_the_application_plane_to_the_granted() -> None:
    text = acl_text(
        prefix="sevenfold",
        server_identities=("sevenfold-server", "sevenfold-server.1"),
        granted=["dev-b", "dev-a", "dev-b"],
    )
    assert text == "\n".join(
        [
            "# Every client: the attestation plane of its own certificate identity.",
            "pattern write sevenfold/d/%u/att/up",
            "pattern read sevenfold/d/%u/att/down",
            "",
            "# Fleet servers: every device's topics, on both listeners.",
            "user sevenfold-server",
            "topic readwrite sevenfold/d/#",
            "topic readwrite recovery/sevenfold/d/#",
            "",
            "user sevenfold-server.1",
            "topic readwrite sevenfold/d/#",
            "topic readwrite recovery/sevenfold/d/#",
            "",
            "# Granted devices: the application plane.",
            "user dev-a",
            "topic write sevenfold/d/dev-a/up",
            "topic read sevenfold/d/dev-a/down",
            "",
            "user dev-b",
            "topic write sevenfold/d/dev-b/up",
            "topic read sevenfold/d/dev-b/down",
            "",
        ]
    )
    assert "%c" not in text
    ungranted = acl_text(prefix="plant7/fleet", server_identities=("ops.a",), granted=())
    assert ungranted.splitlines()[-1] == "# Granted devices: the application plane."
    assert "pattern write plant7/fleet/d/%u/att/up" in ungranted.splitlines()


def test_recovery_acl_has_only_the_attestation_plane_under_the_mount_point() -> None:
    assert recovery_acl_text(prefix="sevenfold") == (
        "# Every client: the attestation plane of its own certificate identity.\n"
        "pattern write recovery/sevenfold/d/%u/att/up\n"
        "pattern read recovery/sevenfold/d/%u/att/down\n"
    )
    with pytest.raises(BrokerError):
        recovery_acl_text(prefix="a/#")


@pytest.mark.parametrize(
    "hostile",
    [
        "dev-a\nuser sevenfold-server",
        "dev-a topic readwrite #",
        "+",
        "#",
        "a/b",
        "%u",
        "",
        "-lead",
        "UPPER",
        "x" * (LONGEST_DEVICE_ID + 1),
        "sevenfold-server",
        7,
        None,
    ],
)
def test_a_grant_of_an_id_the_protocol_refuses_is_rejected(hostile: object) -> None:
    with pytest.raises(InvalidField):
        acl_text(prefix="sevenfold", server_identities=("sevenfold-server",), granted=[hostile])  # type: ignore[list-item]
    with pytest.raises(InvalidField):
        check_granted(["dev-ok", hostile])  # type: ignore[list-item]


def test_a_grant_set_given_as_one_text_is_refused() -> None:
    with pytest.raises(BrokerError, match="collection of ids"):
        check_granted("dev-a")


def test_hostile_initial_grants_stop_the_start_before_any_file(
    fleet_ca: CertificateAuthority, tmp_path: Path
) -> None:
    with pytest.raises(InvalidField):
        MosquittoBroker.start(directory=tmp_path, authority=fleet_ca, grants=["ok", "a/#"])
    assert not (tmp_path / "mosquitto.conf").exists()


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
        {"recovery_port": 0},
        {"port": 18883, "recovery_port": 18883},
        {"manufacturer_cas": [b"not a certificate"]},
        {"manufacturer_cas": b"-----BEGIN CERTIFICATE-----"},
        {"manufacturer_cas": ["text, not bytes"]},
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


@pytest.mark.parametrize(
    ("listener", "option"), [("port", "--broker-port"), ("recovery_port", "--broker-recovery-port")]
)
def test_port_in_use_names_the_port_the_option_and_mosquittos_own_words(
    fleet_ca: CertificateAuthority, mosquitto: str, tmp_path: Path, listener: str, option: str
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        ports = {"port": free_port(), "recovery_port": free_port(), listener: port}
        with pytest.raises(BrokerPortTaken) as caught:
            MosquittoBroker.start(
                directory=tmp_path, authority=fleet_ca, mosquitto=mosquitto, **ports
            )
    assert caught.value.port == port
    assert caught.value.code == "broker-port-taken"
    message = caught.value.explain()
    assert f"port {port} on 127.0.0.1 is already in use" in message
    assert option in message
    assert "Address already in use" in message


def test_default_ports_are_mqtt_over_tls_and_the_next_one() -> None:
    assert (DEFAULT_BROKER_PORT, DEFAULT_RECOVERY_PORT) == (8883, 8884)


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
    longest_topic = "recovery/sevenfold/d/" + "x" * LONGEST_DEVICE_ID + "/att/down"
    assert max_packet_size("sevenfold") == 1 + 2 + len(longest_topic) + 2 + protocol.MAX_MESSAGE
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
