"""How fast the update history takes in reports, against raw inserts of the same rows.

Each report is one transaction, as the gateway serves one request of a device
per batch: the key's conditional upsert, then the merge of a progress report or
the insert and the prune of that device's oldest rows. The anchor inserts the
same history rows with the same driver and engine, one transaction each, with
no key, no merge and no prune: what a plain append-only log would cost. Both
run in the same process on the same database. Run from the repository root::

    .venv/bin/python -m bench.bench_update_history [--reports N] [--devices N]
        [--database sqlite|postgresql|both] [--json]

Every fourth report is a download's progress (merged into its row); the rest
are state changes. Medians of three repeats, reports per second. Nothing here
asserts on time; the ratio is for reading.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from bench.bench_fleet_load import _fresh_postgresql
from fleet_platform.storage import Database, open_database
from sevenfold.server import MIGRATIONS
from update_service.tables import UpdateHistoryEntry
from update_service.update_history import UpdateHistory, UpdateReport, history_row

REPEATS = 3
START = datetime(2026, 12, 1, tzinfo=UTC)
STATES = ("checking", "installed", "booted")


def _reports(devices: int, count: int, run: int) -> list[UpdateReport]:
    """*count* reports spread over *devices*, each device's keys increasing."""
    reports = []
    for index in range(count):
        device, seq = index % devices, index // devices + 1
        progress = seq % 4 == 0
        reports.append(
            UpdateReport(
                device_id=f"bench-{run}-{device}",
                boot_count=1,
                seq=seq,
                state="downloading" if progress else STATES[seq % len(STATES)],
                from_version="1.0.0",
                to_version="1.1.0",
                target="board/fw-1.1.0.img",
                done=seq if progress else None,
                total=count if progress else None,
                at=START + timedelta(milliseconds=index),
            )
        )
    return reports


def _row(report: UpdateReport) -> dict[str, Any]:
    """The history row of *report*, under a device id of its own (the history's are apart)."""
    return {**history_row(report), "device_id": "raw-" + report.device_id}


def _rate(count: int, seconds: float) -> float:
    return count / seconds


def _history_run(database: Database, reports: list[UpdateReport]) -> float:
    history = UpdateHistory(database=database)
    started = time.perf_counter()
    for report in reports:
        with database.transaction("bench report") as tx:
            history.record(report, tx)
    return _rate(len(reports), time.perf_counter() - started)


def _anchor_run(database: Database, reports: list[UpdateReport]) -> float:
    statement = insert(UpdateHistoryEntry)
    rows = [_row(report) for report in reports]
    started = time.perf_counter()
    for row in rows:
        with database.transaction("bench insert") as tx:
            tx.execute(statement, row)
    return _rate(len(rows), time.perf_counter() - started)


def measure(url: str, *, reports: int, devices: int) -> dict[str, float]:
    with open_database(url, migrations=MIGRATIONS) as database:
        database.upgrade()
        anchor, ours = [], []
        for run in range(REPEATS):
            batch = _reports(devices, reports, run)
            anchor.append(_anchor_run(database, batch))
            ours.append(_history_run(database, batch))
    raw, history = statistics.median(anchor), statistics.median(ours)
    return {"raw_inserts_per_s": raw, "reports_per_s": history, "ratio": history / raw}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=2000)
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    engines = ("sqlite", "postgresql") if args.database == "both" else (args.database,)
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for engine in engines:
            url = (
                f"sqlite:///{Path(tmp) / 'bench.db'}"
                if engine == "sqlite"
                else _fresh_postgresql(Path(tmp))
            )
            results[engine] = measure(url, reports=args.reports, devices=args.devices)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{args.reports} reports from {args.devices} devices, median of {REPEATS}")
    print(f"{'engine':<12}{'raw inserts/s':>16}{'reports/s':>12}{'ratio':>8}")
    for engine, figures in results.items():
        print(
            f"{engine:<12}{figures['raw_inserts_per_s']:>16.0f}"
            f"{figures['reports_per_s']:>12.0f}{figures['ratio']:>8.2f}"
        )


if __name__ == "__main__":
    main()
