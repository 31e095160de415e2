"""HTTP routes of the update service: the TUF repository devices fetch from.

These routes are public by design: TUF metadata is signed, so confidentiality
and transport integrity are not what protects a device; signatures, versions
and expiry are.

Starlette's ``FileResponse`` answers ``Range`` requests (206, and 416 for a
range past the end) and sends an ``ETag`` and ``Last-Modified``, but does not
answer ``If-None-Match`` itself; the routes do, with 304, so a device that
polls ``timestamp.json`` downloads it only when it changed. Every other file
is named by its version or its hash (consistent snapshots) and the publisher
never gives a name other content, not even a file a killed publish left
(:mod:`update_service.tuf_repository`), so it is marked immutable for caches
and CDNs; ``timestamp.json`` must be revalidated each time.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, Response

from device_runtime.core.errors import InvalidField
from update_service.repository_files import RepositoryFiles

IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"


def router(*, files: RepositoryFiles) -> APIRouter:
    api = APIRouter(prefix="/tuf", tags=["updates"])

    @api.get("/metadata/{name}")
    def metadata(name: str, request: Request) -> Response:
        try:
            path = files.metadata(name)
        except InvalidField as exc:
            raise HTTPException(status_code=400, detail=exc.reason) from exc
        if path is None:
            raise HTTPException(status_code=404, detail=f"no metadata {name!r}")
        caching = REVALIDATE if name == "timestamp.json" else IMMUTABLE
        return _file(request, path, "application/json", caching)

    @api.get("/targets/{path:path}")
    def target(path: str, request: Request) -> Response:
        try:
            found = files.target(path)
        except InvalidField as exc:
            raise HTTPException(status_code=400, detail=exc.reason) from exc
        if found is None:
            raise HTTPException(status_code=404, detail=f"no target {path!r}")
        return _file(request, found, "application/octet-stream", IMMUTABLE)

    return api


def _file(request: Request, path: Path, media_type: str, caching: str) -> Response:
    """The file, or 304 when the client's ``If-None-Match`` names its current ETag."""
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        raise HTTPException(status_code=404, detail="no such file") from None
    response = FileResponse(
        path, media_type=media_type, stat_result=stat, headers={"Cache-Control": caching}
    )
    etag = response.headers["etag"]
    wanted = request.headers.get("if-none-match")
    if wanted is not None and (wanted.strip() == "*" or etag in _etags(wanted)):
        return Response(status_code=304, headers={"ETag": etag, "Cache-Control": caching})
    return response


def _etags(header: str) -> set[str]:
    """The entity tags of an ``If-None-Match`` list; weak ones compare equal (RFC 9110 13.1.2)."""
    return {tag.strip().removeprefix("W/") for tag in header.split(",")}
