"""The update repository served to licensed engines (SPEC §7), for python-tuf's client.

- ``GET /tuf/metadata/{filename}``: ``timestamp.json`` and versioned
  ``N.root.json``, ``N.snapshot.json``, ``N.targets.json`` (consistent
  snapshots); any other name is 404. ``timestamp.json`` is ``no-cache`` (it is
  re-signed on a schedule); versioned files never change and are cacheable
  for a year. Every file has a strong ETag (its SHA-256); ``If-None-Match``
  answers 304.
- ``GET /tuf/targets/{path}``: the hash-prefixed target files, streamed from
  disk with ``Content-Length`` (and ``Range`` support), only what the license
  entitles (``portal.repository.service.served_target``). Their names never
  change, so they are cacheable for a year; ``private``, because entitlement
  is per license and a shared cache must not hand a bundle to another engine.

Both need the license bearer token (``LicensedEngine``); neither has a body.
They run on the event loop: they only look at memory and ``stat`` a file (the
small metadata files are read when they change), and the file is streamed.
"""

from __future__ import annotations

import logging
import re
from typing import Final

from fastapi import APIRouter, Request
from starlette.responses import FileResponse, Response

from portal.errors import TargetNotFoundError
from portal.repository import service
from portal.web.deps import LicensedEngine, Published

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/tuf")

METADATA_FILENAME: Final = re.compile(r"(?:[0-9]+\.)?(?:root|targets|snapshot|timestamp)\.json")
TIMESTAMP_CACHE_CONTROL: Final = "no-cache"
VERSIONED_CACHE_CONTROL: Final = "public, max-age=31536000, immutable"
TARGET_CACHE_CONTROL: Final = "private, max-age=31536000, immutable"


class TargetFileResponse(FileResponse):
    # Bundles are hundreds of megabytes: fewer, larger reads keep loopback
    # downloads well above 100 MB/s without holding more than this in memory.
    chunk_size = 1024 * 1024


def _not_modified(request: Request, etag: str) -> bool:
    wanted = request.headers.get("if-none-match")
    if not wanted:
        return False
    candidates = {item.strip().removeprefix("W/") for item in wanted.split(",")}
    return etag in candidates or "*" in candidates


@router.get("/metadata/{filename}", summary="TUF metadata")
async def metadata(
    request: Request, filename: str, _engine: LicensedEngine, published: Published
) -> Response:
    if not METADATA_FILENAME.fullmatch(filename):
        raise TargetNotFoundError("there is no such metadata file")
    served = published.metadata_file(filename)
    if served is None:
        raise TargetNotFoundError("there is no such metadata file")
    cache_control = (
        TIMESTAMP_CACHE_CONTROL if filename == "timestamp.json" else VERSIONED_CACHE_CONTROL
    )
    headers = {"Cache-Control": cache_control, "ETag": served.etag}
    if _not_modified(request, served.etag):
        return Response(status_code=304, headers=headers)
    return Response(served.content, media_type="application/json", headers=headers)


@router.get("/targets/{path:path}", summary="A TUF target file (hash-prefixed name)")
async def target(
    request: Request, path: str, engine: LicensedEngine, published: Published
) -> Response:
    served = service.served_target(
        published.state().targets, published.targets_dir, path, engine.channels
    )
    etag = f'"{served.sha256}"'
    headers = {"Cache-Control": TARGET_CACHE_CONTROL, "ETag": etag}
    if _not_modified(request, etag):
        return Response(status_code=304, headers=headers)
    try:
        stat = served.file.stat()
    except OSError:
        logger.exception("published target %s is missing from %s", served.target_path, served.file)
        raise TargetNotFoundError("there is no such target") from None
    if stat.st_size != served.length:
        logger.error("published target %s has the wrong length on disk", served.target_path)
        raise TargetNotFoundError("there is no such target")
    return TargetFileResponse(
        served.file, media_type=served.media_type, headers=headers, stat_result=stat
    )
