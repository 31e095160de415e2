"""JSON lines: one self-describing record per line, the format log shippers ingest as is.

Each record carries a ``type`` ("alert", "asset" or "vulnerability") so one file
can feed a SIEM index without a schema per file. The file is replaced
atomically so a shipper tailing it never reads a half-written record.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from device_runtime.ports.cpython.atomic_file import write_atomic
from passive_monitor.advisories import VulnerabilityHint
from passive_monitor.alerts.model import Alert
from passive_monitor.inventory import Asset


def records(
    *,
    alerts: Iterable[Alert] = (),
    assets: Iterable[Asset] = (),
    hints: Iterable[VulnerabilityHint] = (),
) -> Iterator[dict[str, Any]]:
    for alert in alerts:
        yield {"type": "alert", **alert.to_dict()}
    for asset in assets:
        yield {"type": "asset", **asset.to_dict()}
    for hint in hints:
        yield {"type": "vulnerability", **hint.to_dict()}


def dumps(record: dict[str, Any]) -> str:
    """One line: compact, keys sorted so identical records are byte-identical."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def write_jsonl(
    path: Path,
    *,
    alerts: Iterable[Alert] = (),
    assets: Iterable[Asset] = (),
    hints: Iterable[VulnerabilityHint] = (),
) -> int:
    """Write every record; returns how many lines were written."""
    lines = [dumps(r) for r in records(alerts=alerts, assets=assets, hints=hints)]
    write_atomic(path, "".join(line + "\n" for line in lines).encode(), mode=0o644)
    return len(lines)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Records back from a file (blank lines skipped)."""
    out: list[dict[str, Any]] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        value = json.loads(line)
        if not isinstance(value, dict):
            raise ValueError(f"{path}:{number}: not a JSON object")
        out.append(value)
    return out
