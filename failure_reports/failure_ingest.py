"""The gateway's ``failure-report`` handler: a device's outbox batch in, its settled keys out.

The uploading device is the one its certificate proves (the gateway takes it
from the topic). Before anything is read, the device's own allowance of
reports (a token bucket, :class:`RateLimits`) is spent: past it the device is
told ``rate-limited`` with the wait, and other devices are unaffected. The
batch's framing is checked whole (a record that fails its CRC refuses the
upload, ``bad-field``: the device sent bytes its flash did not hold); then
each record is checked on its own and stored in the batch's transaction, so
the acknowledgement goes out only once they are committed. It settles every
key it names: stored now, stored before, or refused with the first refusal's
reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Connection

from device_runtime.core import failure_report, outbox
from device_runtime.core.errors import RateLimited
from failure_reports.failure_record import Refused, check
from failure_reports.failure_store import FailureStore
from fleet_platform.gateway import Body, Gateway, Request
from fleet_platform.rate_limits import RateLimits

HardwareModelOf = Callable[[Connection, str], "str | None"]
"""(transaction, device id) -> the hardware model the device enrolled with, if known."""

REPORTS_PER_S = 2.0
REPORTS_BURST = 20
"""A device with a week of records drains them in bursts; a flood is told to wait."""


def _unknown_model(tx: Connection, device_id: str) -> str | None:
    return None


@dataclass(slots=True)
class FailureReports:
    """Answers ``failure-report`` requests."""

    store: FailureStore
    hardware_model_of: HardwareModelOf = _unknown_model
    limits: RateLimits = field(
        default_factory=lambda: RateLimits(
            rate=REPORTS_PER_S, burst=REPORTS_BURST, notice_interval_s=0.0
        )
    )

    def register(self, gateway: Gateway) -> None:
        gateway.handle(failure_report.KIND, self.serve)

    def serve(self, request: Request, tx: Connection) -> Body:
        device_id = request.device_id
        if self.limits.check(device_id, time.monotonic()) != "allow":
            wait = self.limits.retry_after_ms(device_id)
            raise RateLimited(f"over {self.limits.rate:g} failure reports/s", wait)
        records = outbox.parse(bytes(request.body["records"]))
        hwmodel = self.hardware_model_of(tx, device_id)
        settled = bytearray()
        recorded = repeated = refused = 0
        reason: str | None = None
        for boot, seq, payload in records:
            settled += boot.to_bytes(4, "big") + seq.to_bytes(4, "big")
            try:
                checked = check(payload, device_id)
            except Refused as exc:
                refused += 1
                reason = reason or f"({boot}, {seq}) {exc}"[:256]
                continue
            if self.store.store(
                device_id, (boot, seq), checked, hwmodel=hwmodel, at=request.received_at, tx=tx
            ):
                recorded += 1
            else:
                repeated += 1
        answer: Body = {
            "settled": bytes(settled),
            "recorded": recorded,
            "repeated": repeated,
            "refused": refused,
        }
        if reason is not None:
            answer["reason"] = reason
        return answer
