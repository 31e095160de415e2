"""What devices, sensors and captures wrote is shown as text, never obeyed as markup or control.

The fleet-facing commands (devices, events, inventory) are driven against a real
server in test_untrusted_text_fleet.py; here are the monitor's own tables, the
local files they are read from, the shared line, warning and error forms, and
the rule that keeps every command on them.
"""

from __future__ import annotations

import ast
import io
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import pytest
from rich.console import Console
from rich.progress import Progress
from typer.testing import CliRunner

from device_runtime.simulator import SimulatedDevice
from passive_monitor.advisories import VulnerabilityHint
from passive_monitor.alerts.model import Alert, Evidence, Party
from passive_monitor.baseline import Baseline
from passive_monitor.export.jsonl import write_jsonl
from passive_monitor.inventory import Asset, Inventory
from sevenfold.cli import output
from sevenfold.cli.app import app
from sevenfold.cli.output import ESCAPE_STYLE, LiteralDescriptionColumn, literal, say, show, warn
from sevenfold.cli.tables import alert_table, asset_table, hint_table, simulated_device_table
from tests.sevenfold.cli.hostile_text import (
    HOSTILE,
    LONG,
    SHOWN,
    WIDE,
    assert_harmless,
    row_showing,
    shown,
)

runner = CliRunner()
CLI = Path(output.__file__).parent


def hostile_asset(value: str, number: int) -> Asset:
    return Asset(
        ip=f"10.0.0.{number}",
        macs=("00:11:22:33:44:55",),
        mac_vendor=value,
        roles=((value, value),),
        vendor=value,
        product=value,
        model=value,
        firmware=value,
        serial=value,
        name=value,
        plc_state=value,
        purdue_level=1,
    )


def hostile_alert(value: str, number: int) -> Alert:
    return Alert(
        id=f"PM-{number:016x}",
        rule="write-from-new-client",
        # Typed as literals, but an alert read back from a file or the wire is only data.
        engine=cast(Any, value),
        severity=cast(Any, value),
        title=value,
        description=value,
        protocol=value,
        function=value,
        client=Party(ip="10.0.0.1"),
        server=Party(ip="10.0.0.2", port=502),
        technique=value,
        evidence=(Evidence(frame=7, ts=1.0),),
        count=3,
        first_seen=1.0,
        last_seen=2.0,
    )


def hostile_hint(value: str) -> VulnerabilityHint:
    return VulnerabilityHint(
        ip=value,
        cve=value,
        title=value,
        severity=value,
        firmware=value,
        confidence=cast(Any, value),
    )


@pytest.fixture
def wide(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in WIDE.items():
        monkeypatch.setenv(name, value)


def test_control_and_format_characters_become_visible_escapes() -> None:
    assert literal("\x1b[2J\x00\x7f\x9b\t\n\r\b").plain == "\\x1b[2J\\x00\\x7f\\x9b\\t\\n\\r\\x08"
    assert literal("\u202e\u2066\u200b\ufeff\u2028").plain == "\\u202e\\u2066\\u200b\\ufeff\\u2028"
    assert literal("\ud800\U000e0001\ue000").plain == "\\ud800\\U000e0001\\ue000"
    assert literal("grüße, 東京, émoji 🙂").plain == "grüße, 東京, émoji 🙂"


def test_escapes_stand_out_from_the_same_characters_typed() -> None:
    """A sender's literal backslash-x-1-b is plain; a real ESC is shown in reverse video."""
    typed, real = literal("\\x1b"), literal("\x1b")
    assert typed.plain == real.plain == "\\x1b"
    assert typed.spans == []
    assert [(span.start, span.end, span.style) for span in real.spans] == [(0, 4, ESCAPE_STYLE)]


def test_a_long_value_is_cut_with_a_count_of_what_is_left() -> None:
    assert literal(LONG).plain == shown(LONG)
    assert literal(None).plain == "-"
    assert literal(42).plain == "42"


@pytest.mark.usefixtures("wide")
@pytest.mark.parametrize("value", HOSTILE)
def test_asset_table_shows_every_field_literally(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    show(asset_table((hostile_asset(value, 1), hostile_asset("plain", 2))))
    out = capsys.readouterr().out
    assert_harmless(out)
    # mac vendor, firmware and state; then role (protocol:role) and vendor product model,
    # which are joined into one cell and so cut as one when too long
    row_showing(out, value, times=3 if value == LONG else 8)
    assert "plain plain plain" in out and "10.0.0.2" in out


@pytest.mark.usefixtures("wide")
@pytest.mark.parametrize("value", HOSTILE)
def test_alert_table_shows_every_field_literally(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    show(alert_table([hostile_alert(value, 1), hostile_alert("low", 2)]))
    out = capsys.readouterr().out
    assert_harmless(out)
    row_showing(out, value, times=4)  # severity, engine, title, technique


@pytest.mark.usefixtures("wide")
@pytest.mark.parametrize("value", HOSTILE)
def test_hint_table_shows_every_field_literally(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    show(hint_table([hostile_hint(value)]))
    out = capsys.readouterr().out
    assert_harmless(out)
    row_showing(out, value, times=6)


@pytest.mark.usefixtures("wide")
@pytest.mark.parametrize("value", HOSTILE)
def test_simulated_devices_table_shows_ids_and_errors_literally(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    device = SimulatedDevice(device_id=value, directory=Path("/nonexistent"), error=value)
    show(simulated_device_table([device]))
    out = capsys.readouterr().out
    assert_harmless(out)
    row_showing(out, value, times=2)


def test_assets_list_reads_hostile_inventory_files_safely(tmp_path: Path) -> None:
    path = tmp_path / "inventory.json"
    Inventory(assets=tuple(hostile_asset(v, n) for n, v in enumerate(HOSTILE, 1))).save(path)
    result = runner.invoke(app, ["assets", "list", "--inventory", str(path)], env=WIDE)
    assert result.exit_code == 0, result.output
    assert_harmless(result.stdout)
    for value in SHOWN:
        row_showing(result.stdout, value, times=8)
    row_showing(result.stdout, LONG, times=3)


@pytest.mark.usefixtures("wide")
def test_a_colour_terminal_gets_styles_but_none_of_the_values_sequences(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setenv("COLORTERM", "truecolor")
    show(alert_table([hostile_alert(value, n) for n, value in enumerate(HOSTILE)]))
    say(*HOSTILE)
    rendered = capsys.readouterr().out
    assert "\x1b[7m" in rendered, "escapes are shown in reverse video"
    for sequence in ("\x1b[2J", "\x1b]8;", "\r", "\u202e"):
        assert sequence not in rendered


@pytest.mark.usefixtures("wide")
def test_lines_and_warnings_show_values_literally(capsys: pytest.CaptureFixture[str]) -> None:
    say("values: ", *HOSTILE)
    warn("fleet server unreachable: ", *HOSTILE)
    captured = capsys.readouterr()
    for printed in (captured.out, captured.err):
        assert_harmless(printed)
        assert "".join(shown(value) for value in HOSTILE) in printed
    assert captured.err.startswith("warning fleet server unreachable: [/x]")


def test_progress_shows_a_file_name_literally() -> None:
    buffer = io.StringIO()
    terminal = Console(file=buffer, force_terminal=True, width=200)
    name = "[/x]\x1b[2J\u202egnp.pcap"
    with Progress(LiteralDescriptionColumn(), console=terminal) as progress:
        progress.add_task(name, total=1)
    assert LiteralDescriptionColumn().render(progress.tasks[0]).plain == (
        "[/x]\\x1b[2J\\u202egnp.pcap"
    )
    assert "\x1b[2J" not in buffer.getvalue() and "\u202e" not in buffer.getvalue()


@pytest.mark.parametrize("value", HOSTILE)
def test_errors_show_hostile_text_literally(value: str, tmp_path: Path) -> None:
    name = "L" * 200 if value == LONG else value  # as long as a file name may be
    result = runner.invoke(app, ["devices", "list", "--state", str(tmp_path / name)], env=WIDE)
    assert result.exit_code == 2
    assert_harmless(result.stderr)
    assert result.stderr.startswith("error no-server: no operator token in")
    assert str(tmp_path / shown(name)) in result.stderr


def test_unreachable_url_is_reported_literally(tmp_path: Path) -> None:
    (tmp_path / "operator.token").write_text("t" * 40)
    url = "http://127.0.0.1:9/[/x]"
    result = runner.invoke(
        app, ["devices", "list", "--state", str(tmp_path), "--url", url], env=WIDE
    )
    assert result.exit_code == 2
    assert_harmless(result.stderr)
    assert "error transport: cannot reach the fleet server at http://127.0.0.1:9/[/x]:" in (
        result.stderr
    )


def test_monitor_usage_errors_name_the_file_literally(tmp_path: Path) -> None:
    missing = tmp_path / "[/x]\x1b[2J.pcap"
    result = runner.invoke(app, ["monitor", "--pcap", str(missing)], env=WIDE)
    assert result.exit_code == 2
    assert_harmless(result.stderr)
    assert "[/x]\\x1b[2J.pcap: no such capture file" in result.stderr


def test_baseline_learn_names_files_and_alerts_literally(tmp_path: Path) -> None:
    folder = tmp_path / "[green]ok\x1b[2J"
    folder.mkdir()
    baseline, alerts = folder / "baseline.json", folder / "alerts.jsonl"
    Baseline().save(baseline)
    alert = replace(hostile_alert("[/x]\x1b[2J", 1), engine="policy", severity="high")
    write_jsonl(alerts, alerts=[alert], assets=(), hints=[])
    files = ["--baseline", str(baseline), "--alerts", str(alerts)]
    unknown = runner.invoke(app, ["baseline", "learn", "[green]ok\x1b[2J", *files], env=WIDE)
    assert unknown.exit_code == 2
    assert_harmless(unknown.stderr)
    assert "no alert [green]ok\\x1b[2J in" in unknown.stderr
    learned = runner.invoke(app, ["baseline", "learn", alert.id, *files], env=WIDE)
    assert learned.exit_code == 0, learned.output
    assert_harmless(learned.stdout)
    assert f"learned 1 alert(s) into {tmp_path}/[green]ok\\x1b[2J/baseline.json" in learned.stdout


PRINTING_CALLS = frozenset(
    {"Console", "Table", "Text", "print", "echo", "secho", "add_row", "from_markup", "assemble"}
)
"""Ways to put a string on the terminal other than through sevenfold.cli.output."""


def test_only_the_output_module_prints() -> None:
    """Every command reports through output.py, so no value escapes :func:`literal`."""
    offences = []
    for path in sorted(CLI.glob("*.py")):
        if path.name == "output.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
                if name in PRINTING_CALLS:
                    offences.append(f"{path.name}:{node.lineno} calls {name}")
    assert offences == []
