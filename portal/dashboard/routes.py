"""Organisation pages: the administrators' list and dashboards, and the
dashboard the organisation's contact opens with an e-mailed link.

Administrators: ``GET /admin/organisations`` (list), ``GET
/admin/organisations/{id}/dashboard?days=30|90|365``, ``POST
/admin/organisations/{id}/text-sharing`` (the switch, with a confirmation
box), ``POST /admin/organisations/{id}/dashboard-link`` (e-mails the
contact a read-only link, multi-use for 30 days) and ``POST
/admin/organisations/{id}/dashboard-link/withdraw`` (links sent stop working).

Organisations: ``GET /organisations/dashboard/{token}?days=...``: the same
charts and tables, without any administrator's form.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, Request

from portal.dashboard import forms, service
from portal.errors import ConflictError
from portal.events.service import subject_history
from portal.organisations.service import (
    parse_organisation_id,
    set_text_sharing,
    withdraw_dashboard_links,
)
from portal.web.deps import AppSettings, CurrentAdmin, DbSession, Mail
from portal.web.deps import current_admin as require_admin
from portal.web.pages import FormFields, form_action, render

if TYPE_CHECKING:
    import uuid

    from sqlalchemy.orm import Session
    from starlette.responses import Response

admin_router = APIRouter(prefix="/admin/organisations", dependencies=[Depends(require_admin)])
contact_router = APIRouter()

FORM_STATUS = 422
# Where the error summary's links lead, by field name.
FIELD_IDS = {
    "contact_email": "dashboard-link-contact",
    "confirm": "text-sharing-confirm",
    "enable": "text-sharing-form",
}


def _dashboard_url(organisation_id: uuid.UUID) -> str:
    return f"/admin/organisations/{organisation_id}/dashboard"


@admin_router.get("", summary="Organisations")
def organisations(request: Request, session: DbSession) -> Response:
    return render(
        request,
        "admin/organisations/list.html",
        {
            "overviews": service.organisation_overviews(session),
            "recent_days": service.DEFAULT_PERIOD,
        },
    )


def _admin_dashboard(
    request: Request,
    session: Session,
    organisation_id: uuid.UUID,
    *,
    days: int = service.DEFAULT_PERIOD,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    dashboard = service.organisation_dashboard(session, organisation_id, days=days)
    context: dict[str, Any] = {
        "dashboard": dashboard,
        "periods": service.PERIODS,
        "verdicts": service.VERDICTS,
        "period_action": _dashboard_url(dashboard.organisation.id),
        "contact_email": service.organisation_contact(session, dashboard.organisation.id) or "",
        "link_days": service.DASHBOARD_LINK_DAYS,
        "link_usable_until": service.dashboard_link_usable_until(
            session, dashboard.organisation.id
        ),
        "history": subject_history(session, [str(dashboard.organisation.id)]),
        "field_ids": FIELD_IDS,
        "errors": errors or {},
        "values": values or {},
    }
    return render(request, "admin/organisations/dashboard.html", context, status_code=status_code)


@admin_router.get("/{organisation_id}/dashboard", summary="An organisation's dashboard")
def dashboard(
    request: Request, organisation_id: str, session: DbSession, days: str = ""
) -> Response:
    return _admin_dashboard(
        request,
        session,
        parse_organisation_id(organisation_id),
        days=service.parse_period(days),
    )


@admin_router.post("/{organisation_id}/text-sharing", summary="Turn text sharing on or off")
def text_sharing(
    request: Request,
    organisation_id: str,
    fields: FormFields,
    session: DbSession,
    mail: Mail,
    admin: CurrentAdmin,
) -> Response:
    parsed = parse_organisation_id(organisation_id)
    outcome = forms.read_text_sharing(fields)
    if outcome.data is None:
        return _admin_dashboard(
            request,
            session,
            parsed,
            errors=outcome.errors,
            values=outcome.values,
            status_code=FORM_STATUS,
        )
    enable = outcome.data.enable
    return form_action(
        request,
        session,
        mail,
        lambda: set_text_sharing(session, parsed, enabled=enable, actor=admin.email),
        success_url=_dashboard_url(parsed),
        message="Text sharing enabled: engines may now send the text of conversations their "
        "moderators choose to share."
        if enable
        else "Text sharing disabled: the portal refuses message text from this organisation.",
        failure_url=_dashboard_url(parsed),
    )


@admin_router.post("/{organisation_id}/dashboard-link", summary="E-mail a dashboard link")
def dashboard_link(
    request: Request,
    organisation_id: str,
    fields: FormFields,
    session: DbSession,
    settings: AppSettings,
    mail: Mail,
    admin: CurrentAdmin,
) -> Response:
    parsed = parse_organisation_id(organisation_id)
    outcome = forms.read_dashboard_contact(fields)
    if outcome.data is None:
        return _admin_dashboard(
            request,
            session,
            parsed,
            errors=outcome.errors,
            values=outcome.values,
            status_code=FORM_STATUS,
        )
    contact = outcome.data
    return form_action(
        request,
        session,
        mail,
        lambda: service.send_dashboard_link(
            session, settings, mail, parsed, to=contact, actor=admin.email
        ),
        success_url=_dashboard_url(parsed),
        message=f"A dashboard link was e-mailed to {contact}; it works for "
        f"{service.DASHBOARD_LINK_DAYS} days, and earlier dashboard links no longer work.",
        failure_url=_dashboard_url(parsed),
    )


@admin_router.post(
    "/{organisation_id}/dashboard-link/withdraw", summary="Withdraw the dashboard links"
)
def withdraw_dashboard_link(
    request: Request,
    organisation_id: str,
    session: DbSession,
    mail: Mail,
    admin: CurrentAdmin,
) -> Response:
    parsed = parse_organisation_id(organisation_id)

    def withdraw() -> None:
        if not withdraw_dashboard_links(
            session, parsed, reason="withdrawn by an administrator", actor=admin.email
        ):
            raise ConflictError("no dashboard link of this organisation works now")

    return form_action(
        request,
        session,
        mail,
        withdraw,
        success_url=_dashboard_url(parsed),
        message="The dashboard links sent no longer work.",
        failure_url=_dashboard_url(parsed),
    )


#### The organisation's view ####


@contact_router.get("/organisations/dashboard/{token}", summary="The organisation's dashboard")
def contact_dashboard(request: Request, token: str, session: DbSession, days: str = "") -> Response:
    linked = service.dashboard_for_link(session, token, days=service.parse_period(days))
    return render(
        request,
        "dashboard/contact.html",
        {
            "dashboard": linked.dashboard,
            "periods": service.PERIODS,
            "verdicts": service.VERDICTS,
            "period_action": f"{service.DASHBOARD_PATH}{token}",
            "link_expires_at": linked.link_expires_at,
        },
    )
