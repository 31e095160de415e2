"""Pytest plugin: in strict mode a test skipped for a missing component fails.

CI must prove that every real component (broker, PostgreSQL, swtpm,
MicroPython, tshark, the shared captures) was there and exercised; a green run
made of skips would prove nothing. Strict mode is on when SEVENFOLD_STRICT=1.
"""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest

STRICT = os.environ.get("SEVENFOLD_STRICT") == "1"
MISSING_PREFIX = "missing component:"


def missing(component: str, how_to_get_it: str) -> None:
    """Skip the calling test because *component* is absent (fails in strict mode)."""
    pytest.skip(f"{MISSING_PREFIX} {component} ({how_to_get_it})")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if not (STRICT and report.skipped):
        return
    reason = str(report.longrepr[2]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
    if MISSING_PREFIX in reason:
        report.outcome = "failed"
        report.longrepr = f"strict mode: {reason}"
