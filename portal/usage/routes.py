"""``POST /api/v1/usage``, and the dependencies every report route shares (docs/feedback.md).

Every report request, checked in this order before any of its body is read:

1. ``Authorization: Bearer <license>`` (``portal.web.deps.LicensedEngine``).
2. ``X-Vigil-Lease: <lease>``, verified with the published license keys and
   bound to that license: missing is 401 ``missing_lease``; malformed, wrongly
   signed or another license's is 401 ``invalid_lease``; expired is 403
   ``lease_expired`` (the engine renews it and sends again).
3. ``Content-Type: application/json`` (else 415); the body, optionally
   ``Content-Encoding: gzip``, is at most 8 MiB as sent and decompressed
   (``portal.web.security.ReportBodyRoute``: 413 beyond).

The service then checks the lease against the body's ``engine_id`` and the
engine's activation. Answers: ``201 {"batch_id", "accepted"}`` the first time,
``200 {"batch_id", "accepted": 0, "duplicate": true}`` after that. Refusals
(``{"error": CODE, "detail": ...}``; nothing of a refused batch is kept):

- 401 ``missing_lease`` / ``invalid_lease`` (also: the lease is another
  engine's than the body's ``engine_id``, or of an earlier activation), 403
  ``lease_expired``: the engine renews its lease and sends the batch again;
- 404 ``not_activated``: the engine was deactivated;
- 409 ``batch_conflict``: the batch id is another license's, or another kind's;
- 413 ``request_too_large``, 400 ``invalid_content_encoding``, 415
  ``unsupported_media_type``: the body itself;
- 422 ``invalid_batch``, ``detail`` a list of ``{"record", "field", "reason"}``
  (at most 20);
- 403 ``text_sharing_disabled`` (feedback only).
"""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from licensing.leases import LeaseError, LeaseExpiredError, VerifiedLease, verify_lease
from portal.errors import (
    ExpiredLeaseError,
    InvalidLeaseTokenError,
    MissingLeaseError,
    UnsupportedMediaTypeError,
)
from portal.usage import service
from portal.usage.schemas import BatchAnswer, UsageBatch, parse_batch
from portal.web.deps import DbSession, LicensedEngine, Published
from portal.web.security import ReportBodyRoute

LEASE_HEADER: Final = "X-Vigil-Lease"

router = APIRouter(prefix="/api/v1", route_class=ReportBodyRoute)


async def report_lease(
    request: Request, engine: LicensedEngine, published: Published
) -> VerifiedLease:
    """The engine's lease, verified and bound to the bearer's license."""
    token = request.headers.get(LEASE_HEADER, "").strip()
    if not token:
        raise MissingLeaseError(f"send the engine's current lease as '{LEASE_HEADER}: <lease>'")
    try:
        return verify_lease(
            token, published.state().license_keys, license_id=str(engine.license_id)
        )
    except LeaseExpiredError:
        raise ExpiredLeaseError("the lease expired: renew it and send the batch again") from None
    except LeaseError as error:
        raise InvalidLeaseTokenError(f"the lease is not usable: {error}") from None


ReportLease = Annotated[VerifiedLease, Depends(report_lease)]


async def report_body(request: Request, _lease: ReportLease) -> bytes:
    """The whole (decompressed, bounded) JSON body, read once the lease is verified."""
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != "application/json":
        raise UnsupportedMediaTypeError("send the batch as Content-Type: application/json")
    return await request.body()


ReportBody = Annotated[bytes, Depends(report_body)]


def batch_response(answer: BatchAnswer) -> JSONResponse:
    return JSONResponse(
        answer.model_dump(mode="json", exclude_none=True),
        status_code=200 if answer.duplicate else 201,
    )


@router.post("/usage", summary="Add an engine's usage counts, once per batch")
def receive_usage(
    engine: LicensedEngine, lease: ReportLease, body: ReportBody, session: DbSession
) -> JSONResponse:
    batch = parse_batch(UsageBatch, body)
    return batch_response(service.receive_usage(session, engine.license_id, lease, batch))
