"""What a 422 says: where and why a request failed validation, never the input itself.

FastAPI's default answer echoes every offending value back, so a hostile or
oversized field (a 64 KiB device id) comes back several times larger, and
whatever a client sent is reflected into logs and tools that show answers.
Every route of the fleet server answers with this instead.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

MAX_REPORTED_ERRORS = 5
MAX_MESSAGE = 200
"""Characters of one error's message (pydantic's messages are short; a custom one may not be)."""


def reasons(exc: RequestValidationError) -> list[dict[str, Any]]:
    """Location, message and type of the first few errors, without the input."""
    return [
        {
            "loc": [str(part)[:64] for part in error.get("loc", ())][:8],
            "msg": str(error.get("msg", ""))[:MAX_MESSAGE],
            "type": str(error.get("type", "")),
        }
        for error in exc.errors()[:MAX_REPORTED_ERRORS]
    ]


async def validation_failed(request: Request, error: Exception) -> JSONResponse:
    """The app-wide 422 handler."""
    assert isinstance(error, RequestValidationError)
    return JSONResponse(status_code=422, content={"detail": reasons(error)})
