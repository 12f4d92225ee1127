"""``GET /healthz``: the process answers and the database does too (JSON)."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

logger = logging.getLogger(__name__)

router = APIRouter()


def database_reachable(session_factory: sessionmaker[Session]) -> bool:
    try:
        with session_factory() as session:
            session.execute(text("SELECT 1"))
    except SQLAlchemyError as error:
        logger.warning("health check: database unreachable: %s", type(error).__name__)
        return False
    return True


@router.get("/healthz", summary="Liveness and database check")
def healthz(request: Request) -> JSONResponse:
    if database_reachable(request.app.state.session_factory):
        return JSONResponse({"status": "ok", "database": "ok"})
    return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
