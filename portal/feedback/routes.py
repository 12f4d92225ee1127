"""``GET /api/v1/feedback/policy`` and ``POST /api/v1/feedback`` (docs/feedback.md).

Authenticated, bounded and answered as every report route
(``portal.usage.routes``): license bearer, ``X-Vigil-Lease``, JSON body of at
most 8 MiB, optionally gzipped; ``201``/``200`` duplicate; ``422
invalid_batch``; ``403 text_sharing_disabled`` for text the organisation did
not agree to receive.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from portal.feedback import service
from portal.feedback.schemas import FeedbackBatch
from portal.usage.routes import ReportBody, ReportLease, batch_response
from portal.usage.schemas import parse_batch
from portal.web.deps import DbSession, LicensedEngine
from portal.web.security import ReportBodyRoute

router = APIRouter(prefix="/api/v1/feedback", route_class=ReportBodyRoute)


@router.get("/policy", summary="Whether the engine may send text, and the batch limits")
def policy(engine: LicensedEngine, lease: ReportLease, session: DbSession) -> JSONResponse:
    answer = service.feedback_policy(session, engine.license_id, lease)
    return JSONResponse(answer.model_dump(mode="json"))


@router.post("", summary="Add moderators' verdicts, once per batch")
def receive_feedback(
    engine: LicensedEngine, lease: ReportLease, body: ReportBody, session: DbSession
) -> JSONResponse:
    batch = parse_batch(FeedbackBatch, body)
    return batch_response(service.receive_feedback(session, engine.license_id, lease, batch))
