"""The gateway's ``update-status`` handler: a device's report in, its acknowledgement out.

The reporting device is the one its certificate proves (the gateway takes it
from the topic); no field of the report names a device. The body has passed the
shared schema (:mod:`device_runtime.core.update_status`, imported here so the
server speaks the message) and is checked again for what one schema cannot say
before the history records it, inside the batch's transaction: the device hears
its acknowledgement only once the report is committed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from sqlalchemy import Connection

from device_runtime.core.update_status import check_progress
from fleet_platform.gateway import Body, Gateway, Request
from update_service.update_history import UpdateHistory, UpdateReport

KIND = "update-status"


@dataclass(frozen=True, slots=True)
class UpdateReports:
    """Answers ``update-status`` requests."""

    history: UpdateHistory

    def register(self, gateway: Gateway) -> None:
        gateway.handle(KIND, self.serve)

    def serve(self, request: Request, tx: Connection) -> Body:
        body = request.body
        check_progress(body)
        report = UpdateReport(
            device_id=request.device_id,
            boot_count=cast(int, body["boot_count"]),
            seq=cast(int, body["seq"]),
            state=cast(str, body["state"]),
            from_version=cast(str, body["from_version"]),
            to_version=cast(str, body["to_version"]),
            target=cast(str, body["target"]),
            done=cast("int | None", body.get("done")),
            total=cast("int | None", body.get("total")),
            reason=cast("str | None", body.get("reason")),
            at=request.received_at,
        )
        self.history.record(report, tx)
        return {"boot_count": report.boot_count, "seq": report.seq}
