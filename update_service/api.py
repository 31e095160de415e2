"""HTTP routes of the update service: the TUF repository devices fetch from.

These routes are public by design: TUF metadata is signed, so confidentiality
and transport integrity are not what protects a device; signatures, versions
and expiry are.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

from device_runtime.core.errors import InvalidField
from update_service.repository_files import RepositoryFiles


def router(*, files: RepositoryFiles) -> APIRouter:
    api = APIRouter(prefix="/tuf", tags=["updates"])

    @api.get("/metadata/{name}")
    def metadata(name: str) -> FileResponse:
        try:
            path = files.metadata(name)
        except InvalidField as exc:
            raise HTTPException(status_code=400, detail=exc.reason) from exc
        if path is None:
            raise HTTPException(status_code=404, detail=f"no metadata {name!r}")
        return FileResponse(path, media_type="application/json")

    @api.get("/targets/{path:path}")
    def target(path: str) -> FileResponse:
        try:
            found = files.target(path)
        except InvalidField as exc:
            raise HTTPException(status_code=400, detail=exc.reason) from exc
        if found is None:
            raise HTTPException(status_code=404, detail=f"no target {path!r}")
        return FileResponse(found, media_type="application/octet-stream")

    return api
