"""Operator REST route of the update service: one device's update history, paged."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from device_runtime.core import protocol
from update_service.update_history import MAX_ROWS_PER_DEVICE, UpdateHistory

DeviceId = Annotated[str, Path(max_length=protocol.MAX_DEVICE_ID)]


class UpdateEntryView(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    """Entry id: pass the last one of a page as ``before`` for the next page."""
    state: str
    """checking, downloading, installed, booted, confirmed, reverted or failed."""
    from_version: str
    to_version: str
    target: str
    """The target's name, as the device reported it."""
    done: int | None
    """Bytes downloaded, with ``total``; a download's reports are merged into one entry."""
    total: int | None
    reason: str | None
    boot_count: int
    seq: int
    """With ``boot_count``, the key of the latest report this entry records."""
    first_at: datetime
    at: datetime


class UpdateHistoryPage(BaseModel):
    device_id: str
    entries: list[UpdateEntryView] = Field(description="Newest first.")
    next_before: int | None
    """``before`` for the next, older page; null on the last page."""


def router(*, history: UpdateHistory, authorized: Callable[..., None]) -> APIRouter:
    """The route over *history*; *authorized* is the operator-token dependency."""
    api = APIRouter(prefix="/api/v1", tags=["updates"], dependencies=[Depends(authorized)])

    @api.get("/devices/{device_id}/updates")
    def device_updates(
        device_id: DeviceId,
        limit: Annotated[int, Query(ge=1, le=MAX_ROWS_PER_DEVICE)] = 50,
        before: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    ) -> UpdateHistoryPage:
        """What the device reported of its updates, newest first (empty for a device that
        never reported); at most the newest 1,000 entries are kept."""
        entries = history.page(device_id, limit=limit, before=before)
        return UpdateHistoryPage(
            device_id=device_id,
            entries=[UpdateEntryView.model_validate(entry) for entry in entries],
            next_before=entries[-1].id if len(entries) == limit else None,
        )

    return api
