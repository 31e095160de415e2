"""``monitor`` and ``assets list`` through typer's runner on the shared captures."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from passive_monitor.export.jsonl import read_jsonl
from passive_monitor.oui import DEFAULT_DIRECTORY
from sevenfold.cli.assets import assets_app
from sevenfold.cli.monitor import monitor_command
from tests.components import shared_dir
from tests.strict_mode import missing

app = typer.Typer()
app.command("monitor")(monitor_command)
app.add_typer(assets_app, name="assets")
runner = CliRunner()


@pytest.fixture(autouse=True)
def _oui_list() -> None:
    if not (DEFAULT_DIRECTORY / "oui.csv").is_file():
        missing("ieee-data", "apt-get install ieee-data")


def pcap(name: str) -> str:
    return str(shared_dir("pcaps") / name)


def monitor_json(*args: str) -> dict[str, Any]:
    result = runner.invoke(app, ["monitor", *args, "--json"])
    assert result.exit_code == 0, result.output
    summary: dict[str, Any] = json.loads(result.stdout)
    return summary


def test_json_summary_of_an_s7_capture() -> None:
    summary = monitor_json("--pcap", pcap("s7comm/s7ident.pcap"), "--learn-packets", "0")
    (plc,) = [a for a in summary["assets"] if a["vendor"] == "Siemens"]
    assert plc["firmware"] == "V3.2.6"
    assert "CVE-2016-9158" in {v["cve"] for v in summary["vulnerabilities"]}
    assert summary["packets"] == 36
    assert {a["rule"] for a in summary["alerts"]} >= {"program-upload", "new-asset"}


def test_baseline_is_learned_saved_then_loaded(tmp_path: Path) -> None:
    baseline = tmp_path / "baseline.json"
    capture = pcap("modbus/modbus_test.pcap")
    first = monitor_json("--pcap", capture, "--baseline", str(baseline), "--learn-packets", "5000")
    assert baseline.is_file() and not first["baseline"]["loaded"]
    second = monitor_json("--pcap", capture, "--baseline", str(baseline))
    assert second["baseline"]["loaded"]
    assert [a for a in second["alerts"] if a["engine"] == "policy"] == []
    other = monitor_json("--pcap", pcap("modbus/modbus_example.pcap"), "--baseline", str(baseline))
    assert {a["rule"] for a in other["alerts"]} >= {"new-asset", "new-connection", "write"}


def test_inventory_jsonl_and_assets_list(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.json"
    out = tmp_path / "events.jsonl"
    summary = monitor_json(
        "--pcap", pcap("enip/enip_test.pcap"), "--inventory", str(inventory), "--jsonl", str(out)
    )
    records = read_jsonl(out)
    assert [r["type"] for r in records].count("asset") == len(summary["assets"])
    assert [r["type"] for r in records].count("alert") == len(summary["alerts"])
    listed = runner.invoke(app, ["assets", "list", "--inventory", str(inventory), "--json"])
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.stdout) == summary["assets"]
    table = runner.invoke(
        app, ["assets", "list", "--inventory", str(inventory)], env={"COLUMNS": "200"}
    )
    assert table.exit_code == 0 and "10.1.1.164" in table.stdout and "1756-ENBT/A" in table.stdout


def test_table_output() -> None:
    result = runner.invoke(app, ["monitor", "--pcap", pcap("s7comm/step7_s300_stop.pcapng")])
    assert result.exit_code == 0, result.output
    assert "PLC Stop" in result.stdout and "T0858" in result.stdout


def test_cef_to_a_udp_collector() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.settimeout(5.0)
        port = listener.getsockname()[1]
        summary = monitor_json(
            "--pcap",
            pcap("dnp3/cold_restart_and_response.pcap"),
            "--cef",
            f"udp://127.0.0.1:{port}",
        )
        datagrams = [listener.recv(65535) for _ in range(summary["cef_sent"])]
    assert summary["cef_sent"] == len(summary["alerts"]) >= 1
    assert any(b"|restart|" in d and b"cs1=T0816" in d for d in datagrams)


def test_custom_advisories_replace_the_sample(tmp_path: Path) -> None:
    feed = tmp_path / "feed.json"
    feed.write_text(
        json.dumps(
            {
                "format": "sevenfold-advisories",
                "version": 1,
                "advisories": [
                    {
                        "cve": "CVE-2099-0001",
                        "title": "test advisory",
                        "vendor": "Siemens",
                        "products": ["6ES7 315"],
                        "severity": "low",
                        "affected": [{"introduced": "3.0", "fixed": "3.3"}],
                    }
                ],
            }
        )
    )
    summary = monitor_json("--pcap", pcap("s7comm/s7ident.pcap"), "--advisories", str(feed))
    assert [v["cve"] for v in summary["vulnerabilities"]] == ["CVE-2099-0001"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "exactly one of --pcap"),
        (["--pcap", "/nonexistent.pcap"], "no such capture file"),
        (["--pcap", "x", "--interface", "lo"], "exactly one of --pcap"),
    ],
)
def test_usage_errors(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["monitor", *args])
    assert result.exit_code == 2
    assert message in result.output


def test_malformed_inputs_exit_with_a_specific_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    capture = pcap("modbus/modbus_example.pcap")
    for option, code in (("--advisories", "bad-advisories"), ("--baseline", "bad-baseline")):
        result = runner.invoke(app, ["monitor", "--pcap", capture, option, str(bad)])
        assert result.exit_code == 2
        assert code in result.output
    listed = runner.invoke(app, ["assets", "list", "--inventory", str(bad)])
    assert listed.exit_code == 2 and "bad-inventory" in listed.output
    garbage = tmp_path / "garbage.pcap"
    garbage.write_bytes(b"\x00" * 64)
    result = runner.invoke(app, ["monitor", "--pcap", str(garbage)])
    assert result.exit_code == 2 and "capture" in result.output
    target = runner.invoke(app, ["monitor", "--pcap", capture, "--cef", "syslog://x"])
    assert target.exit_code == 2 and "bad-syslog-target" in target.output


@pytest.mark.parametrize("spec", ["bogus=502", "modbus=", "modbus=70000", "modbus"])
def test_bad_port_assignments_are_rejected(spec: str) -> None:
    result = runner.invoke(
        app, ["monitor", "--pcap", pcap("modbus/modbus_example.pcap"), "--port", spec]
    )
    assert result.exit_code == 2
    assert "expected PROTOCOL=PORT" in result.output


def test_extra_port_keeps_the_standard_ones() -> None:
    summary = monitor_json(
        "--pcap",
        pcap("modbus/modbus_example.pcap"),
        "--port",
        "modbus=5020",
        "--port",
        "dnp3=20001",
    )
    assert any(a["roles"].get("modbus") == ["server"] for a in summary["assets"])
