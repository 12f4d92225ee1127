"""Pages of applications: the public form and status page, the administrators' queue.

Public: ``GET/POST /apply``, ``GET /applications/status/{token}`` and its reply
form. Administrators (every route of ``admin_router`` needs a session):
``/admin/applications`` (queue), ``/admin/applications/{id}`` (detail) and its
forms: checklist, notes, approve, decline, request-information, defer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from portal.applications import forms, service
from portal.applications.models import (
    AGE_RANGE_LABELS,
    Application,
    ApplicationStatus,
    ChecklistItem,
)
from portal.licenses.service import MAX_ENGINES
from portal.pagination import clamp_page
from portal.web.deps import AppSettings, CurrentAdmin, DbSession, LicenseSigningKey, Mail
from portal.web.deps import current_admin as require_admin
from portal.web.pages import FormFields, form_action, redirect, render
from portal.web.security import rate_limit

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

public_router = APIRouter()
admin_router = APIRouter(prefix="/admin/applications", dependencies=[Depends(require_admin)])

FORM_STATUS = 422


#### Applicants ####


def _apply_page(
    request: Request, values: dict[str, str], errors: dict[str, str], *, status_code: int = 200
) -> Response:
    return render(
        request,
        "applications/apply.html",
        {
            "values": values,
            "errors": errors,
            "age_ranges": [(member.value, label) for member, label in AGE_RANGE_LABELS.items()],
        },
        status_code=status_code,
    )


@public_router.get("/apply", summary="The application form")
def apply_form(request: Request) -> Response:
    return _apply_page(request, {}, {})


@public_router.post(
    "/apply", summary="Submit an application", dependencies=[Depends(rate_limit("apply"))]
)
def apply(
    request: Request, fields: FormFields, session: DbSession, settings: AppSettings, mail: Mail
) -> Response:
    outcome = forms.read_application(fields)
    if outcome.data is None:
        return _apply_page(request, outcome.values, outcome.errors, status_code=FORM_STATUS)
    application = service.submit_application(session, settings, mail, outcome.data)
    return redirect(
        request,
        "/apply/submitted",
        f"Application {application.label} received. We have e-mailed a link to follow its "
        f"progress to {application.contact_email}.",
    )


@public_router.get("/apply/submitted", summary="After applying")
def applied(request: Request) -> Response:
    return render(request, "applications/submitted.html")


def _status_page(
    request: Request,
    application: Application,
    token: str,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "applications/status.html",
        {
            "application": application,
            "token": token,
            "statuses": ApplicationStatus,
            "values": values or {},
            "errors": errors or {},
        },
        status_code=status_code,
    )


@public_router.get("/applications/status/{token}", summary="An application's status")
def application_status(request: Request, token: str, session: DbSession) -> Response:
    application = service.application_for_status_link(session, token)
    return _status_page(request, application, token)


@public_router.post("/applications/status/{token}/reply", summary="Answer a question")
def reply(request: Request, token: str, fields: FormFields, session: DbSession) -> Response:
    outcome = forms.read_reply(fields)
    if outcome.data is None:
        application = service.application_for_status_link(session, token)
        return _status_page(
            request,
            application,
            token,
            values=outcome.values,
            errors=outcome.errors,
            status_code=FORM_STATUS,
        )
    service.reply_to_request(session, token, outcome.data)
    return redirect(
        request,
        f"/applications/status/{token}",
        "Thank you: your answer was sent and your application is back in the review queue.",
    )


#### Administrators ####


@admin_router.get("", summary="The application queue")
def queue(
    request: Request,
    session: DbSession,
    status: str = service.DEFAULT_QUEUE_FILTER,
    page: str = "1",
) -> Response:
    filters = {item.key: item for item in service.QUEUE_FILTERS}
    status_filter = status if status in filters else service.DEFAULT_QUEUE_FILTER
    number, per_page = clamp_page(int(page) if page.isdigit() else 1)
    return render(
        request,
        "admin/applications/list.html",
        {
            "page": service.queue_page(
                session, status_filter=status_filter, number=number, per_page=per_page
            ),
            "filters": service.QUEUE_FILTERS,
            "current_filter": filters[status_filter],
            "counts": service.status_counts(session),
        },
    )


def _detail_url(application_id: int) -> str:
    return f"/admin/applications/{application_id}"


def _detail_page(
    request: Request,
    session: Session,
    application_id: int,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    application = service.get_application(session, application_id)
    entries = {entry.item: entry for entry in application.checklist}
    context: dict[str, Any] = {
        "application": application,
        "checklist": [(item, entries.get(item)) for item in ChecklistItem],
        "missing": service.missing_checklist_items(application),
        "allowed": service.allowed_actions(application),
        "statuses": ApplicationStatus,
        "history": service.application_history(session, application),
        "existing_organisation": (
            application.status is not ApplicationStatus.APPROVED
            and service.existing_organisation_named(session, application)
        ),
        "max_engines_limit": MAX_ENGINES,
        "errors": errors or {},
        "values": values or {},
    }
    return render(request, "admin/applications/detail.html", context, status_code=status_code)


@admin_router.get("/{application_id}", summary="An application, its checklist and history")
def detail(request: Request, application_id: int, session: DbSession) -> Response:
    return _detail_page(request, session, application_id)


@admin_router.post("/{application_id}/checklist", summary="Tick a checklist item")
def update_checklist(
    request: Request,
    application_id: int,
    fields: FormFields,
    session: DbSession,
    mail: Mail,
    admin: CurrentAdmin,
) -> Response:
    outcome = forms.read_checklist(fields)
    if outcome.data is None:
        return _detail_page(
            request,
            session,
            application_id,
            errors=outcome.errors,
            values=outcome.values,
            status_code=FORM_STATUS,
        )
    update = outcome.data
    return form_action(
        request,
        session,
        mail,
        lambda: service.set_checklist_item(
            session,
            application_id,
            update.item,
            checked=update.checked,
            note=update.note,
            admin=admin,
        ),
        success_url=f"{_detail_url(application_id)}#checklist",
        message=f"Checklist: {update.item.label} {'ticked' if update.checked else 'unticked'}.",
        failure_url=_detail_url(application_id),
    )


@admin_router.post("/{application_id}/notes", summary="Add a private note")
def add_note(
    request: Request,
    application_id: int,
    fields: FormFields,
    session: DbSession,
    mail: Mail,
    admin: CurrentAdmin,
) -> Response:
    outcome = forms.read_required_text(fields, "note", "the note")
    if outcome.data is None:
        return _detail_page(
            request,
            session,
            application_id,
            errors=outcome.errors,
            values=outcome.values,
            status_code=FORM_STATUS,
        )
    body = outcome.data
    return form_action(
        request,
        session,
        mail,
        lambda: service.add_note(session, application_id, body, admin=admin),
        success_url=f"{_detail_url(application_id)}#notes",
        message="Note added.",
        failure_url=_detail_url(application_id),
    )


@admin_router.post("/{application_id}/approve", summary="Approve and issue the license")
def approve(
    request: Request,
    application_id: int,
    fields: FormFields,
    session: DbSession,
    settings: AppSettings,
    mail: Mail,
    admin: CurrentAdmin,
    signing_key: LicenseSigningKey,
) -> Response:
    outcome = forms.read_approval(fields, max_engines_limit=MAX_ENGINES)
    if outcome.data is None:
        return _detail_page(
            request,
            session,
            application_id,
            errors=outcome.errors,
            values=outcome.values,
            status_code=FORM_STATUS,
        )
    engines = outcome.data
    return form_action(
        request,
        session,
        mail,
        lambda: service.approve(
            session,
            settings,
            mail,
            application_id,
            max_engines=engines,
            signing_key=signing_key,
            admin=admin,
        ),
        success_url=_detail_url(application_id),
        message="Approved: the license was issued and its download link e-mailed.",
        failure_url=_detail_url(application_id),
    )


@admin_router.post("/{application_id}/decline", summary="Decline, with a reason")
def decline(
    request: Request,
    application_id: int,
    fields: FormFields,
    session: DbSession,
    settings: AppSettings,
    mail: Mail,
    admin: CurrentAdmin,
) -> Response:
    outcome = forms.read_required_text(fields, "reason", "the reason for declining")
    if outcome.data is None:
        return _detail_page(
            request,
            session,
            application_id,
            errors=outcome.errors,
            values=outcome.values,
            status_code=FORM_STATUS,
        )
    reason = outcome.data
    return form_action(
        request,
        session,
        mail,
        lambda: service.decline(session, settings, mail, application_id, reason, admin=admin),
        success_url=_detail_url(application_id),
        message="Declined: the applicant was e-mailed the reason.",
        failure_url=_detail_url(application_id),
    )


@admin_router.post("/{application_id}/request-information", summary="Ask the applicant")
def request_information(
    request: Request,
    application_id: int,
    fields: FormFields,
    session: DbSession,
    settings: AppSettings,
    mail: Mail,
    admin: CurrentAdmin,
) -> Response:
    outcome = forms.read_required_text(fields, "question", "the question for the applicant")
    if outcome.data is None:
        return _detail_page(
            request,
            session,
            application_id,
            errors=outcome.errors,
            values=outcome.values,
            status_code=FORM_STATUS,
        )
    question = outcome.data
    return form_action(
        request,
        session,
        mail,
        lambda: service.request_information(
            session, settings, mail, application_id, question, admin=admin
        ),
        success_url=_detail_url(application_id),
        message="Question sent: the applicant was e-mailed a link to answer it.",
        failure_url=_detail_url(application_id),
    )


@admin_router.post("/{application_id}/defer", summary="Put the decision off")
def defer(
    request: Request,
    application_id: int,
    fields: FormFields,
    session: DbSession,
    mail: Mail,
    admin: CurrentAdmin,
) -> Response:
    outcome = forms.read_optional_text(fields, "reason", "the reason for deferring")
    if outcome.data is None:
        return _detail_page(
            request,
            session,
            application_id,
            errors=outcome.errors,
            values=outcome.values,
            status_code=FORM_STATUS,
        )
    reason = outcome.data
    return form_action(
        request,
        session,
        mail,
        lambda: service.defer(session, application_id, reason, admin=admin),
        success_url=_detail_url(application_id),
        message="Deferred.",
        failure_url=_detail_url(application_id),
    )
