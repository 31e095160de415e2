"""A device that sends garbage in a loop is answered but cannot flood the audit trail."""

from __future__ import annotations

from fleet_platform.event_budget import EventBudget


def test_budget_per_device_and_window() -> None:
    budget = EventBudget(per_window=3, window_s=10)
    assert [budget.admit("a", 0.0)[0] for _ in range(5)] == [True, True, True, False, False]
    assert budget.admit("b", 1.0) == (True, 0)
    assert budget.admit("a", 10.0) == (True, 2)
    assert budget.admit("a", 11.0) == (True, 0)
