"""CEF escaping, RFC 5424 framing, and delivery to real UDP and TCP syslog listeners."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from passive_monitor.alerts.model import Alert, Evidence, Party
from passive_monitor.export.cef import cef_event, escape_header, escape_value
from passive_monitor.export.jsonl import read_jsonl, write_jsonl
from passive_monitor.export.syslog import (
    SyslogSender,
    SyslogTargetError,
    octet_counted,
    parse_target,
    rfc5424,
)
from passive_monitor.inventory import Asset

ALERT = Alert(
    id="PM-0123456789abcdef",
    rule="write",
    engine="policy",
    severity="high",
    title="Unlearned modbus Write|Single\\Register",
    description="value=5 written\nby 10.0.0.2 \\ twice",
    protocol="modbus",
    function="6",
    client=Party(ip="10.0.0.2", port=50123, mac="00:0e:8c:00:00:01"),
    server=Party(ip="10.0.0.1", port=502, mac=None),
    technique="T0836",
    evidence=(Evidence(frame=40, ts=1595660608.2), Evidence(frame=44, ts=1595660609.5)),
    count=2,
    first_seen=1595660608.2,
    last_seen=1595660609.5,
    transport="tcp",
)

EXPECTED_CEF = (
    "CEF:0|Sevenfold|Passive Monitor|1.2|write|Unlearned modbus Write\\|Single\\\\Register|8|"
    "rt=1595660609500 start=1595660608200 end=1595660609500 cnt=2 "
    "externalId=PM-0123456789abcdef cat=policy msg=value\\=5 written\\nby 10.0.0.2 \\\\ twice "
    "proto=TCP app=modbus src=10.0.0.2 spt=50123 smac=00:0e:8c:00:00:01 dst=10.0.0.1 dpt=502 "
    "cs1Label=MITRE ATT&CK for ICS cs1=T0836 cs2Label=Function cs2=6 "
    "cs3Label=Evidence frames cs3=40,44"
)


def test_header_escaping() -> None:
    assert escape_header("a|b\\c\nd=e") == "a\\|b\\\\c d=e"


def test_extension_escaping() -> None:
    assert escape_value("a=b\\c\r\nd|e\rf") == "a\\=b\\\\c\\nd|e\\rf"


def test_cef_event_is_exact() -> None:
    assert cef_event(ALERT, version="1.2") == EXPECTED_CEF


def test_rfc5424_frame_is_exact() -> None:
    frame = rfc5424("hello", severity="high", ts=1595660609.5, hostname="sensor 1", procid="42")
    # local0 (16) * 8 + error (3) = 131; spaces are not allowed in HOSTNAME.
    assert frame == b"<131>1 2020-07-25T07:03:29.500Z sensor1 sevenfold 42 alert - hello"


def test_octet_counting() -> None:
    assert octet_counted(b"abc def") == b"7 abc def"


@pytest.mark.parametrize(
    "url", ["http://h:1", "udp://:514", "tcp://host", "udp://host:99999", "tcp://h:1/x"]
)
def test_bad_targets_are_rejected(url: str) -> None:
    with pytest.raises(SyslogTargetError):
        parse_target(url)


def expected_frame() -> bytes:
    return rfc5424(EXPECTED_CEF, severity="high", ts=ALERT.last_seen, hostname="s1", procid="7")


def test_udp_listener_receives_the_exact_datagram() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.settimeout(5.0)
        port = listener.getsockname()[1]
        with SyslogSender(f"udp://127.0.0.1:{port}", hostname="s1", procid="7") as sender:
            sender.send(cef_event(ALERT, version="1.2"), severity="high", ts=ALERT.last_seen)
            sender.send(cef_event(ALERT, version="1.2"), severity="high", ts=ALERT.last_seen)
        first, _ = listener.recvfrom(65535)
        second, _ = listener.recvfrom(65535)
    assert first == second == expected_frame()


def test_tcp_listener_receives_octet_counted_frames() -> None:
    received = bytearray()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(5.0)
        port = listener.getsockname()[1]

        def collect() -> None:
            connection, _ = listener.accept()
            with connection:
                connection.settimeout(5.0)
                while chunk := connection.recv(65536):
                    received.extend(chunk)

        thread = threading.Thread(target=collect)
        thread.start()
        with SyslogSender(f"tcp://127.0.0.1:{port}", hostname="s1", procid="7") as sender:
            for _ in range(3):
                sender.send(cef_event(ALERT, version="1.2"), severity="high", ts=ALERT.last_seen)
        thread.join(timeout=10)
    frame = expected_frame()
    assert bytes(received) == octet_counted(frame) * 3
    assert bytes(received).startswith(f"{len(frame)} <131>1 ".encode())


def test_unreachable_tcp_collector_is_a_clear_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sender = SyslogSender(f"tcp://127.0.0.1:{port}")
    with pytest.raises(SyslogTargetError, match=str(port)):
        sender.send("x", severity="low", ts=0.0)


def test_json_lines_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    asset = Asset(ip="10.0.0.1", roles=(("modbus", "server"),), purdue_level=1)
    assert write_jsonl(path, alerts=[ALERT], assets=[asset]) == 2
    alert_record, asset_record = read_jsonl(path)
    assert alert_record.pop("type") == "alert"
    assert Alert.from_dict(alert_record) == ALERT
    assert asset_record.pop("type") == "asset"
    assert Asset.from_dict(asset_record) == asset
    assert path.read_text().count("\n") == 2
