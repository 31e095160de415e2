"""The public ICS captures under shared/pcaps, listed at collection time.

Tests are parametrised by file name so a failure names the capture; when the
folder is absent a single placeholder parameter makes the test skip (or fail
in strict mode) as a missing component instead of silently collecting nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.components import shared_dir
from tests.strict_mode import missing

ABSENT = "no-captures"


def _root() -> Path:
    default = Path(__file__).resolve().parents[3] / "shared"
    return Path(os.environ.get("SEVENFOLD_SHARED", default)) / "pcaps"


def capture_names(kind: str) -> list[str]:
    """File names in ``pcaps/<kind>``, sorted; a placeholder when there are none."""
    folder = _root() / kind
    names = sorted(p.name for p in folder.glob("*.pcap*")) if folder.is_dir() else []
    return names or [ABSENT]


def capture(kind: str, name: str) -> Path:
    """The path of one shared capture (skips as a missing component if absent)."""
    path = shared_dir("pcaps") / kind / name
    if name == ABSENT or not path.is_file():
        missing(f"shared/pcaps/{kind}/{name}", "the public ICS captures (see MANIFEST.txt)")
    return path
