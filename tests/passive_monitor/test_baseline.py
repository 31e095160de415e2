"""Learning, saving, loading and "learn this" for the baseline."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from passive_monitor.alerts.engine import Detector
from passive_monitor.baseline import Baseline, BaselineFormatError
from passive_monitor.sensor import Sensor
from tests.components import shared_dir


def detect(
    name: str, baseline: Baseline, *, learn_frames: int = 0, learn_seconds: float = 0.0
) -> Detector:
    detector = Detector(baseline=baseline, learn_frames=learn_frames, learn_seconds=learn_seconds)
    for observation in Sensor().observe_file(shared_dir("pcaps") / name):
        detector.observe(observation)
    return detector


def test_learning_a_polling_capture_then_replaying_it_raises_no_policy_alert() -> None:
    learned = detect("modbus/modbus_test.pcap", Baseline(), learn_frames=10**9)
    baseline = learned.baseline
    assert baseline.learned > 0
    assert any(function[2:] == ("modbus", "4") for function in baseline.functions)
    assert any(function[2:] == ("modbus", "6") for function in baseline.functions)
    replay = detect("modbus/modbus_test.pcap", baseline)
    assert [a for a in replay.alerts if a.engine == "policy"] == []


def test_after_learning_the_first_frames_later_departures_alert() -> None:
    # modbus_example ends with a new client (192.168.1.6) polling a new server.
    detector = detect("modbus/modbus_example.pcap", Baseline(), learn_frames=95)
    rules = {(a.rule, a.client.ip if a.client else None) for a in detector.alerts}
    assert ("new-asset", "192.168.1.6") in rules
    assert ("new-asset", "3.15.227.20") in rules
    assert ("new-connection", "192.168.1.6") in rules
    assert not detector.learning


def test_learning_by_capture_time() -> None:
    # Frames 1-98 span a few milliseconds; frames 99-100 come two days later.
    detector = detect("modbus/modbus_example.pcap", Baseline(), learn_seconds=3600.0)
    assert not detector.learning
    policy = [a for a in detector.alerts if a.engine == "policy"]
    assert {a.evidence[0].frame for a in policy} == {99}
    assert "127.0.0.1" in detector.baseline.assets
    assert "192.168.1.6" not in detector.baseline.assets


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    baseline = detect("dnp3/dnp3_example.pcap", Baseline(), learn_frames=10**9).baseline
    path = tmp_path / "baseline.json"
    baseline.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    loaded = Baseline.load(path)
    assert loaded.to_json() == baseline.to_json()
    assert loaded.functions and loaded.connections and loaded.assets


def test_learn_alert_folds_a_policy_alert_into_the_baseline() -> None:
    first = detect("modbus/modbus_example.pcap", Baseline(), learn_frames=95)
    baseline = first.baseline
    for alert in first.alerts:
        baseline.learn_alert(alert)
    again = detect("modbus/modbus_example.pcap", baseline)
    assert again.alerts == []


def test_learning_an_alert_while_detecting_silences_its_repeats() -> None:
    # The detector remembers policy verdicts per conversation; learning an
    # alert on the live baseline must make it forget them.
    path = shared_dir("pcaps") / "modbus/modbus_example.pcap"
    detector = Detector(baseline=Baseline(), learn_frames=95)
    observations = list(Sensor().observe_file(path))
    raised = []
    for observation in observations:
        raised += detector.observe(observation)
    assert raised
    for alert in raised:
        detector.baseline.learn_alert(alert)
    counts = {a.id: a.count for a in detector.alerts}
    late = [o for o in observations if o.frame > 95]
    for observation in late:
        assert detector.observe(observation) == []
    assert {a.id: a.count for a in detector.alerts} == counts


def test_learn_alert_accepts_an_operational_alert() -> None:
    first = detect("dnp3/cold_restart_and_response.pcap", Baseline(), learn_frames=10**9)
    (restart,) = [a for a in first.alerts if a.rule == "restart"]
    baseline = first.baseline
    baseline.learn_alert(restart)
    assert detect("dnp3/cold_restart_and_response.pcap", baseline).alerts == []
    # Accepting a cold restart does not accept a warm restart.
    warm = detect("dnp3/warm_restart_and_response.pcap", baseline, learn_frames=10**9)
    assert [a.rule for a in warm.alerts] == ["restart"]


def test_accepted_alerts_survive_save_and_load(tmp_path: Path) -> None:
    first = detect("s7comm/step7_s300_stop.pcapng", Baseline(), learn_frames=10**9)
    (stop,) = first.alerts
    first.baseline.learn_alert(stop)
    path = tmp_path / "baseline.json"
    first.baseline.save(path)
    assert detect("s7comm/step7_s300_stop.pcapng", Baseline.load(path)).alerts == []


VALID = {
    "format": "sevenfold-passive-baseline",
    "version": 1,
    "learned": 3,
    "first_ts": 1.0,
    "last_ts": 2.0,
    "assets": ["10.0.0.1"],
    "connections": [["10.0.0.2", "10.0.0.1", "tcp/502"]],
    "functions": [["10.0.0.2", "10.0.0.1", "modbus", "3"]],
    "accepted": [],
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format": "something-else"}, "format must be"),
        ({"version": 2}, "unsupported version"),
        ({"learned": -1}, "learned must be"),
        ({"first_ts": "yesterday"}, "first_ts must be a number"),
        ({"assets": "10.0.0.1"}, "assets must be a list of strings"),
        ({"connections": [["10.0.0.2", "10.0.0.1"]]}, r"connections\[0\] must be a list of 3"),
        ({"functions": [["a", "b", "c", 4]]}, r"functions\[0\] must be a list of 4"),
        ({"accepted": {}}, "accepted must be a list"),
    ],
)
def test_malformed_baselines_are_rejected(
    tmp_path: Path, change: dict[str, object], message: str
) -> None:
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps({**VALID, **change}))
    with pytest.raises(BaselineFormatError, match=message):
        Baseline.load(path)


def test_valid_hand_written_baseline_loads(tmp_path: Path) -> None:
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps(VALID))
    baseline = Baseline.load(path)
    assert baseline.knows_function("10.0.0.2", "10.0.0.1", "modbus", "3")
    assert baseline.knows_connection("10.0.0.2", "10.0.0.1", "tcp/502")


@pytest.mark.parametrize(
    ("raw", "message"),
    [(b"{oops", "not JSON"), (b"\xff\xfe\x00", "not UTF-8"), (b"[1, 2]", "JSON object")],
)
def test_unreadable_baselines_are_rejected(tmp_path: Path, raw: bytes, message: str) -> None:
    path = tmp_path / "baseline.json"
    path.write_bytes(raw)
    with pytest.raises(BaselineFormatError, match=message):
        Baseline.load(path)
