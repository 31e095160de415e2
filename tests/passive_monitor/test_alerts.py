"""Detection rules on real captures, with tshark naming the frames each alert must cite."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator

import pytest

from passive_monitor.alerts.activity import classify
from passive_monitor.alerts.engine import Detector
from passive_monitor.alerts.model import MAX_EVIDENCE, Alert
from passive_monitor.baseline import Baseline
from passive_monitor.dissectors.base import Message
from passive_monitor.sensor import Sensor
from tests.components import shared_dir
from tests.passive_monitor.tshark_reference import tshark_fields

NEVER_LEARNED = 0


def alerts_of(name: str, *, learn_frames: int = NEVER_LEARNED) -> list[Alert]:
    detector = Detector(baseline=Baseline(), learn_frames=learn_frames)
    for observation in Sensor().observe_file(shared_dir("pcaps") / name):
        detector.observe(observation)
    return detector.alerts


def frames(name: str, display_filter: str) -> set[int]:
    return set(tshark_fields(shared_dir("pcaps") / name, display_filter=display_filter, fields=[]))


def evidence(alerts: list[Alert]) -> set[int]:
    return {e.frame for a in alerts for e in a.evidence}


def test_modbus_writes_are_policy_alerts_with_fitting_techniques() -> None:
    name = "modbus/modbus_example.pcap"
    writes = [a for a in alerts_of(name) if a.rule == "write"]
    by_function = {a.function: a for a in writes}
    assert set(by_function) == {"5", "6", "15", "16", "22", "23"}
    assert {by_function[f].technique for f in ("6", "16", "22", "23")} == {"T0836"}
    assert {by_function[f].technique for f in ("5", "15")} == {"T0855"}
    assert all(a.engine == "policy" and a.severity == "high" for a in writes)
    requests = frames(name, "modbus.func_code in {5,6,15,16,22,23} && tcp.dstport == 502")
    assert evidence(writes) == requests


def test_identity_reads_cite_remote_system_information_discovery() -> None:
    alerts = alerts_of("modbus/modbus_example.pcap")
    (device_id,) = [a for a in alerts if a.function == "43/14"]
    assert device_id.rule == "new-function"
    assert device_id.technique == "T0888"


def test_s7_program_upload_stop_and_start() -> None:
    name = "s7comm/snap7.pcap"
    alerts = alerts_of(name, learn_frames=10**9)
    uploads = [a for a in alerts if a.rule == "program-upload"]
    assert {a.technique for a in uploads} == {"T0845"}
    assert evidence(uploads) == frames(
        name, "s7comm.header.rosctr == 1 && s7comm.param.func in {0x1d,0x1e,0x1f}"
    )
    modes = {a.function: a for a in alerts if a.rule == "mode-change"}
    assert set(modes) == {"job/0x29", "job/0x28/P_PROGRAM"}
    assert all(a.technique == "T0858" and a.engine == "operational" for a in modes.values())
    assert evidence([modes["job/0x29"]]) == frames(
        name, "s7comm.header.rosctr == 1 && s7comm.param.func == 0x29"
    )


@pytest.mark.parametrize(
    "name", ["s7comm/s7comm_downloading_block_db1.pcap", "s7comm/step7_s300_download.pcapng"]
)
def test_s7_program_download(name: str) -> None:
    downloads = [a for a in alerts_of(name, learn_frames=10**9) if a.rule == "program-download"]
    assert {a.technique for a in downloads} <= {"T0843", None}
    requests = sorted(
        frames(name, "s7comm.header.rosctr == 1 && s7comm.param.func in {0x1a,0x1b,0x1c}")
    )
    cited = sorted(e.frame for a in downloads for e in a.evidence if a.function != "job/0x28/_INSE")
    # A PDU is reported when its bytes are acknowledged, so the cited frame is the
    # data frame or the acknowledgement right after it.
    assert len(cited) == len(requests)
    assert all(0 <= c - r <= 1 for c, r in zip(cited, requests, strict=True))


@pytest.mark.parametrize(
    ("name", "function"),
    [("dnp3/cold_restart_and_response.pcap", "13"), ("dnp3/warm_restart_and_response.pcap", "14")],
)
def test_dnp3_restarts_are_operational_even_while_learning(name: str, function: str) -> None:
    (restart,) = [a for a in alerts_of(name, learn_frames=10**9) if a.rule == "restart"]
    assert (restart.function, restart.technique, restart.engine) == (
        function,
        "T0816",
        "operational",
    )
    assert evidence([restart]) == frames(name, f"dnp3.al.func == {function}")


@pytest.mark.parametrize(
    "name", ["dnp3/file_read.pcap", "dnp3/file_write.pcap", "dnp3/file_delete.pcap"]
)
def test_dnp3_file_operations(name: str) -> None:
    files = [a for a in alerts_of(name) if a.rule == "file"]
    assert files
    assert evidence(files) <= frames(name, "dnp3.al.func in {1,2,25,26,27,28,29,30}")


def test_dnp3_operate_is_a_command() -> None:
    name = "dnp3/select_operate_and_responses.pcap"
    commands = {a.function: a for a in alerts_of(name) if a.rule == "command"}
    assert set(commands) == {"3", "4"}
    assert {a.technique for a in commands.values()} == {"T0855"}


def test_iec104_commands() -> None:
    name = "iec104/090813_diverse.pcap"
    commands = [a for a in alerts_of(name) if a.rule == "command"]
    type_ids = {int(a.function or 0) for a in commands}
    assert type_ids and all(45 <= t <= 64 for t in type_ids)
    assert {a.technique for a in commands} == {"T0855"}


def test_cip_stop_is_a_mode_change() -> None:
    (stop,) = [a for a in alerts_of("enip/cip_stop_plc.pcap") if a.rule == "mode-change"]
    assert stop.technique == "T0858"
    assert stop.server is not None and stop.server.port == 44818


def test_protocol_violations_from_a_fuzzed_stream() -> None:
    name = "modbus/fuzz-72.pcap"
    violations = [a for a in alerts_of(name, learn_frames=10**9) if a.engine == "protocol"]
    assert violations
    assert {a.rule for a in violations} == {"protocol-violation"}
    assert sum(a.count for a in violations) >= len(violations)


def _ethernet_ipv4_tcp(src: str, dst: str, sport: int, dport: int, flags: int) -> bytes:
    tcp = struct.pack("!HHIIBBHHH", sport, dport, 1000, 0, 5 << 4, flags, 8192, 0, 0)
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0, 64, 6, 0,
        socket.inet_aton(src), socket.inet_aton(dst),
    )  # fmt: skip
    total = sum(struct.unpack("!10H", header))
    checksum = ~((total & 0xFFFF) + (total >> 16)) & 0xFFFF
    header = header[:10] + struct.pack("!H", checksum) + header[12:]
    return b"\x00\x11\x22\x33\x44\x55" + b"\x00\x0e\x8c\x00\x00\x01" + b"\x08\x00" + header + tcp


def _packets(pairs: list[tuple[str, int]], source: str) -> Iterator[tuple[float, int, bytes]]:
    for index, (host, port) in enumerate(pairs):
        yield (1000.0 + index * 0.1, 1, _ethernet_ipv4_tcp(source, host, 40000 + index, port, 0x02))


def run_packets(packets: Iterator[tuple[float, int, bytes]]) -> list[Alert]:
    detector = Detector(baseline=Baseline(), learn_frames=10**9)
    for observation in Sensor().observe_packets(packets):
        detector.observe(observation)
    return detector.alerts


def test_address_sweep_is_a_scan() -> None:
    sweep = [(f"10.9.0.{i}", 502) for i in range(1, 31)]
    (scan,) = [a for a in run_packets(_packets(sweep, "10.9.9.9")) if a.rule == "address-scan"]
    assert (scan.engine, scan.technique) == ("anomaly", "T0846")
    assert scan.client is not None and scan.client.ip == "10.9.9.9"
    assert scan.count == 11  # threshold reached at the 20th host, then 10 more
    assert len(scan.evidence) == MAX_EVIDENCE


def test_port_sweep_is_a_scan() -> None:
    sweep = [("10.9.0.1", port) for port in range(100, 130)]
    (scan,) = [a for a in run_packets(_packets(sweep, "10.9.9.8")) if a.rule == "port-scan"]
    assert scan.server is not None and scan.server.ip == "10.9.0.1"


def test_a_few_connections_are_not_a_scan() -> None:
    normal = [(f"10.9.0.{i}", 502) for i in range(1, 6)]
    assert [a for a in run_packets(_packets(normal, "10.9.9.7")) if a.engine == "anomaly"] == []


def test_undecodable_frames_are_malformed_alerts() -> None:
    truncated = b"\x00\x11\x22\x33\x44\x55\x00\x0e\x8c\x00\x00\x01\x08\x00\x45\x00"
    alerts = run_packets(iter([(1.0, 1, truncated), (2.0, 1, truncated)]))
    (malformed,) = alerts
    assert (malformed.rule, malformed.engine, malformed.count) == ("malformed", "protocol", 2)


def test_polling_loop_is_deduplicated() -> None:
    name = "modbus/modbus_test.pcap"
    alerts = alerts_of(name)
    keys = [(a.rule, a.client, a.server, a.protocol, a.function) for a in alerts]
    assert len(keys) == len(set(keys))
    polling = [a for a in alerts if a.function == "4"]
    reads = frames(name, "modbus.func_code == 4 && tcp.dstport == 502")
    assert len(polling) < len(reads) / 100
    assert sum(a.count for a in polling) == len(reads)
    busiest = max(polling, key=lambda a: a.count)
    assert len(busiest.evidence) == MAX_EVIDENCE
    assert busiest.last_seen > busiest.first_seen


def test_alert_ids_are_stable_across_runs() -> None:
    first = [a.id for a in alerts_of("s7comm/snap7.pcap")]
    assert first == [a.id for a in alerts_of("s7comm/snap7.pcap")]
    assert all(alert_id.startswith("PM-") for alert_id in first)


@pytest.mark.parametrize(
    ("protocol", "fields", "category", "technique"),
    [
        ("modbus", {"modbus.func_code": 90, "umas.func_code": 0x30}, "program_download", "T0843"),
        ("modbus", {"modbus.func_code": 90, "umas.func_code": 0x33}, "program_upload", "T0845"),
        ("modbus", {"modbus.func_code": 90, "umas.func_code": 0x41}, "mode_change", "T0858"),
        ("modbus", {"modbus.func_code": 8, "modbus.diagnostic_code": 1}, "restart", "T0816"),
        ("bacnet", {"bacapp.confirmed_service": 15}, "write", "T0836"),
        ("bacnet", {"bacapp.confirmed_service": 20}, "restart", "T0816"),
        ("bacnet", {"bacapp.unconfirmed_service": 8}, "discovery", "T0846"),
        ("iec104", {"iec60870_asdu.typeid": 105}, "restart", "T0816"),
        ("iec104", {"iec60870_asdu.typeid": 112}, "write", "T0836"),
        ("enip", {"enip.command": 0x63}, "identity", "T0888"),
        (
            "s7comm",
            {"s7comm.header.rosctr": 1, "s7comm.param.func": 0x1B},
            "program_download",
            "T0843",
        ),
    ],
)
def test_classification(
    protocol: str, fields: dict[str, int], category: str, technique: str
) -> None:
    activity = classify(Message(protocol, 1, 0.0, True, dict(fields)))
    assert activity is not None
    assert (activity.category, activity.technique) == (category, technique)


def test_responses_and_odd_field_shapes_are_not_classified_as_requests() -> None:
    assert classify(Message("modbus", 1, 0.0, False, {"modbus.func_code": 6})) is None
    assert classify(Message("modbus", 1, 0.0, True, {"modbus.func_code": b"\x06"})) is None
    hostile = classify(Message("dnp3", 1, 0.0, True, {"dnp3.al.func": ("13", "x")}))
    assert hostile is not None and hostile.category == "restart"
