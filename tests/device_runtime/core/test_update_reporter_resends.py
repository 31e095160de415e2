"""An update report is sent again, with the same key, until an acknowledgement comes.

The real agent over mutual TLS to a real broker; the scripted server stays silent
for the first sends, as a server whose answer was lost would look.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from device_runtime.core import protocol
from device_runtime.core.errors import TransportError
from device_runtime.core.update_status import UpdateReporter
from tests.device_runtime.core.test_agent import Link, ScriptedServer, ack, link

__all__ = ["link"]

Connect = Callable[..., tuple[Link, ScriptedServer]]


def _silent_at_first(unanswered: int) -> Callable[[protocol.Envelope, int], object]:
    def answer(envelope: protocol.Envelope, index: int) -> object:
        if envelope.kind != "update-status":
            return ack(envelope)
        if index <= unanswered:  # index 0 is the enroll
            return None
        return {"boot_count": envelope.body["boot_count"], "seq": envelope.body["seq"]}

    return answer


def test_a_lost_answer_costs_a_resend_with_the_same_key(link: Connect) -> None:
    device, server = link(_silent_at_first(2), timeout_ms=300, retry_attempts=4, backoff_ms=10)
    device.agent.boot()
    device.agent.enroll()
    reporter = UpdateReporter(device.agent)
    answer = reporter.report("installed", "1.0.0", "1.1.0", "board/fw-1.1.0.img")
    assert answer == {"boot_count": 1, "seq": 1}
    reports = [seen for seen in server.seen if seen.kind == "update-status"]
    assert len(reports) == 3
    assert all(seen.body == reports[0].body for seen in reports), "the same key each time"
    assert len({seen.correlation for seen in reports}) == 3, "a fresh correlation id each time"
    nxt = reporter.report("booted", "1.0.0", "1.1.0", "board/fw-1.1.0.img")
    assert nxt["seq"] == 2


def test_no_answer_at_all_gives_up_after_the_attempts(link: Connect) -> None:
    device, server = link(_silent_at_first(99), timeout_ms=200, retry_attempts=3, backoff_ms=10)
    device.agent.boot()
    device.agent.enroll()
    reporter = UpdateReporter(device.agent)
    with pytest.raises(TransportError):
        reporter.report("checking", "1.0.0", "1.1.0", "board/fw-1.1.0.img")
    assert len([seen for seen in server.seen if seen.kind == "update-status"]) == 3
