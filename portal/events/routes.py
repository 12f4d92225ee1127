"""``/admin/audit``: the audit trail, newest first, paginated."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from portal.events.service import page_events
from portal.pagination import clamp_page
from portal.web.deps import DbSession
from portal.web.deps import current_admin as require_admin
from portal.web.pages import render

router = APIRouter(prefix="/admin/audit", dependencies=[Depends(require_admin)])


@router.get("", summary="The audit trail")
def audit(
    request: Request,
    session: DbSession,
    page: str = "1",
    tag: str = "",
    subject: str = "",
) -> Response:
    number, per_page = clamp_page(int(page) if page.isdigit() else 1)
    tag = tag.strip()[:64]
    subject = subject.strip()[:64]
    return render(
        request,
        "admin/audit/list.html",
        {
            "page": page_events(
                session,
                number=number,
                per_page=per_page,
                tag=tag or None,
                subject_id=subject or None,
            ),
            "tag": tag,
            "subject": subject,
        },
    )
