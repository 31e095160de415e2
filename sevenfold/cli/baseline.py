"""``sevenfold baseline learn``: the operator's "learn this" on an alert.

An alert that turns out to be legitimate activity (a new engineering station,
a scheduled write) is folded into the baseline so it is not raised again;
the alert is taken from the JSON lines file ``monitor --jsonl`` wrote.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from passive_monitor.alerts.model import Alert
from passive_monitor.baseline import Baseline
from passive_monitor.export.jsonl import read_jsonl
from sevenfold.cli.options import JsonOption
from sevenfold.cli.output import emit_json, reported_errors, say
from sevenfold.cli.reporting import UsageError

baseline_app = typer.Typer(help="The learned baseline of who talks to whom, and how.")


@baseline_app.command("learn")
def learn(
    alert_ids: Annotated[list[str], typer.Argument(help="Ids of the alerts to accept.")],
    baseline: Annotated[Path, typer.Option("--baseline", help="Baseline file to update.")],
    alerts: Annotated[
        Path, typer.Option("--alerts", help="JSON lines written by `monitor --jsonl`.")
    ],
    as_json: JsonOption = False,
) -> None:
    """Accept the activity behind these alerts as normal from now on."""
    with reported_errors():
        for path in (baseline, alerts):
            if not path.is_file():
                raise UsageError(f"{path}: no such file")
        try:
            records = read_jsonl(alerts)
        except ValueError as exc:
            raise UsageError(f"{alerts} is not a JSON lines file: {exc}") from exc
        known = {
            record["id"]: record
            for record in records
            if record.get("type") == "alert" and isinstance(record.get("id"), str)
        }
        missing = [alert_id for alert_id in alert_ids if alert_id not in known]
        if missing:
            raise UsageError(f"no alert {', '.join(missing)} in {alerts}")
        learned = Baseline.load(baseline)
        for alert_id in alert_ids:
            record = {key: value for key, value in known[alert_id].items() if key != "type"}
            try:
                alert = Alert.from_dict(record)
            except (KeyError, TypeError, ValueError) as exc:
                raise UsageError(f"alert {alert_id} in {alerts} is malformed: {exc}") from exc
            learned.learn_alert(alert)
        learned.save(baseline)
    if as_json:
        emit_json({"baseline": str(baseline), "learned": alert_ids})
    else:
        say(f"learned {len(alert_ids)} alert(s) into ", baseline)
