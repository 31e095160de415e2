"""The update reporter and its messages; runs under MicroPython and CPython.

The agent is a stand-in that encodes each request as the real one does (so the
shared schema judges it) and answers as a server would, naming the report's key.
"""

from device_runtime.core import protocol
from device_runtime.core.errors import InvalidField, TooLarge
from device_runtime.core.update_status import STATES, UpdateReporter, check_progress
from tests.device_runtime.core.protocol_cases import CID, raises

PORTABLE = True

TARGET = "board/fw-1.1.0.img"


class Clock:
    def __init__(self):
        self.now = 1000

    def monotonic_ms(self):
        return self.now


class Agent:
    """What the reporter uses of a DeviceAgent: its boot count, clock and resending request."""

    def __init__(self, wrong_ack=False):
        self.boot_count = 7
        self.clock = Clock()
        self.sent = []
        self.wrong_ack = wrong_ack

    def idempotent_request(self, kind, body):
        envelope = protocol.decode(protocol.encode(kind, CID, body))
        self.sent.append(envelope.body)
        seq = body["seq"] + 1 if self.wrong_ack else body["seq"]
        answer = {"boot_count": body["boot_count"], "seq": seq}
        data = protocol.encode(protocol.RESPONSES[kind], CID, answer)
        return protocol.decode(data, protocol.MAX_DOWN_MESSAGE).body


def test_the_messages_are_declared_on_the_application_plane():
    assert "update-status" in protocol.RESPONSES
    assert protocol.RESPONSES["update-status"] == "update-status-ack"
    assert protocol.PLANES["update-status"] == protocol.APPLICATION_PLANE
    before = len(protocol.RESPONSES)
    protocol.add_request("update-status", (), "update-status-ack", ())
    assert len(protocol.RESPONSES) == before


def test_each_report_carries_the_next_key_of_this_boot():
    agent = Agent()
    reporter = UpdateReporter(agent)
    for state in STATES:
        answer = reporter.report(state, "1.0.0", "1.1.0", TARGET)
        assert answer["boot_count"] == 7
    assert [body["seq"] for body in agent.sent] == [1, 2, 3, 4, 5, 6, 7]
    assert [body["state"] for body in agent.sent] == list(STATES)
    assert "done" not in agent.sent[0] and "reason" not in agent.sent[0]


def test_a_failure_carries_its_reason():
    agent = Agent()
    UpdateReporter(agent).report("failed", "1.0.0", "1.1.0", TARGET, reason="hash mismatch")
    assert agent.sent[0]["reason"] == "hash mismatch"


def test_bad_reports_never_leave_the_device():
    agent = Agent()
    reporter = UpdateReporter(agent)
    raises(InvalidField, reporter.report, "exploded", "1.0.0", "1.1.0", TARGET)
    raises(InvalidField, reporter.report, "downloading", "1.0.0", "1.1.0", TARGET, 9, 5)
    raises(InvalidField, reporter.report, "downloading", "1.0.0", "1.1.0", TARGET, 9)
    raises(InvalidField, reporter.report, "downloading", "1.0.0", "1.1.0", TARGET, -1, 5)
    raises(TooLarge, reporter.report, "checking", "1.0.0", "1.1.0", "t" * 129)
    raises(TooLarge, reporter.report, "checking", "1" * 33, "1.1.0", TARGET)
    raises(TooLarge, reporter.report, "failed", "1.0.0", "1.1.0", TARGET, None, None, "r" * 257)
    raises(InvalidField, reporter.report, "failed", "1.0.0", "1.1.0", TARGET, None, None, "a\nb")
    assert agent.sent == []


def test_the_check_one_schema_cannot_make():
    check_progress({"done": 5, "total": 5})
    check_progress({"total": 5})
    check_progress({})
    assert "past the total" in raises(InvalidField, check_progress, {"done": 6, "total": 5}).reason
    assert "needs" in raises(InvalidField, check_progress, {"done": 1}).reason


def test_an_ack_naming_another_report_is_refused():
    reporter = UpdateReporter(Agent(wrong_ack=True))
    raises(InvalidField, reporter.report, "checking", "1.0.0", "1.1.0", TARGET)


def test_progress_is_rate_limited_but_the_first_and_last_always_go():
    agent = Agent()
    reporter = UpdateReporter(agent, progress_interval_ms=1000)
    sent = []
    for block in range(21):
        agent.clock.now += 100
        answer = reporter.progress("1.0.0", "1.1.0", TARGET, block * 10, 200)
        if answer is not None:
            sent.append(block)
    assert sent == [0, 10, 20], sent
    assert [body["done"] for body in agent.sent] == [0, 100, 200]
    assert all(body["state"] == "downloading" for body in agent.sent)


def test_an_acknowledgement_decodes_within_the_down_limit():
    answer = {"boot_count": 0xFFFFFFFF, "seq": protocol.MAX_COUNTER}
    data = protocol.encode("update-status-ack", CID, answer)
    assert protocol.decode(data, protocol.MAX_DOWN_MESSAGE).body == answer
    raises(InvalidField, protocol.encode, "update-status-ack", CID, {"boot_count": 1, "seq": 0})
