"""The update agent's own limits on what it repeats are the update-status message's.

Kept apart from ``update_status`` (a device that does not report keeps the protocol out of
its heap), so they are held equal here. CPython only: the agent is too large for the
64 KiB heap the portable tests run in.
"""

from device_runtime.core import update_agent, update_status


def test_the_update_agent_repeats_nothing_longer_than_update_status_carries() -> None:
    assert update_agent.VERSION_LIMIT == update_status.MAX_VERSION
    assert update_agent.NAME_LIMIT == update_status.MAX_TARGET
