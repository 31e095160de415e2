"""Whatever a device sends as ``update-status``, the server answers it or refuses it with a
protocol error: nothing else escapes the decoder, the shared checks or the history."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from device_runtime.core import cbor, protocol
from device_runtime.core.errors import ProtocolError
from fleet_platform.device_requests import decode_request
from fleet_platform.gateway import Request
from fleet_platform.storage import Database
from update_service.update_history import UpdateHistory
from update_service.update_reports import UpdateReports

DEVICE = "dev-fuzz"
NOW = datetime(2026, 12, 1, 21, 0, tzinfo=UTC)

VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64 - 1),
    st.text(max_size=300),
    st.binary(max_size=40),
    st.lists(st.integers(min_value=0, max_value=9), max_size=3),
    st.sampled_from(["checking", "downloading", "failed", "reverted", "exploded", ""]),
)
FIELDS = st.sampled_from(
    ["state", "from_version", "to_version", "target", "done", "total", "reason", "boot_count",
     "seq", "device_id", "extra"]
)  # fmt: skip
GOOD: dict[str, object] = {
    "state": "downloading",
    "from_version": "1.0.0",
    "to_version": "1.1.0",
    "target": "board/fw.img",
    "done": 1,
    "total": 2,
    "boot_count": 1,
    "seq": 1,
}


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    changes=st.dictionaries(FIELDS, VALUES, max_size=4),
    removed=st.sets(FIELDS, max_size=3),
)
def test_any_body_is_answered_or_refused_with_a_reason(
    database: Database, changes: dict[str, object], removed: set[str]
) -> None:
    body = {k: v for k, v in {**GOOD, **changes}.items() if k not in removed}
    data = cbor.dumps({"v": 1, "t": "update-status", "id": b"abcdefgh", "b": body})
    reports = UpdateReports(UpdateHistory(database=database))
    try:
        envelope = decode_request(data, DEVICE)
        request = Request(DEVICE, envelope.kind, envelope.body, NOW)
        with database.transaction("fuzz") as tx:
            answer = reports.serve(request, tx)
    except ProtocolError as refused:
        assert refused.code in {"bad-field", "too-large", "replayed"}, refused.code
        assert refused.reason
        return
    assert answer == {"boot_count": body["boot_count"], "seq": body["seq"]}
    protocol.encode("update-status-ack", b"abcdefgh", answer)
