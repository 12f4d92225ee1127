"""License pages: the administrators' list and actions, and the one-time download.

Administrators: ``GET /admin/licenses`` (list), ``GET /admin/licenses/{id}``,
``POST /admin/licenses/{id}/{suspend,reinstate,revoke,renew,send-link}``: each
calls the one service function the command line uses (``revoke_license``
publishes the revocation list exactly as ``vigil-portal licenses revoke``).

Organisations: ``GET /licenses/download/{token}`` shows what the link offers
and changes nothing; its form (``POST``) uses the link up and returns the zip
(see ``portal.licenses.delivery`` for why).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from portal.applications.service import license_contact
from portal.engines.service import active_activations
from portal.errors import LicenseNotFoundError
from portal.events.service import subject_history
from portal.licenses import delivery, forms, service
from portal.licenses.models import ALLOWED_TRANSITIONS, LicenseStatus
from portal.pagination import clamp_page
from portal.repository.service import open_repository
from portal.web.deps import AppSettings, CurrentAdmin, DbSession, LicenseSigningKey, Mail
from portal.web.deps import current_admin as require_admin
from portal.web.pages import FormFields, form_action, render

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from portal.settings import Settings

admin_router = APIRouter(prefix="/admin/licenses", dependencies=[Depends(require_admin)])
download_router = APIRouter()

FORM_STATUS = 422


def _license_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise LicenseNotFoundError("there is no such license") from None


def _detail_url(license_id: uuid.UUID) -> str:
    return f"/admin/licenses/{license_id}"


@admin_router.get("", summary="Licenses")
def licenses(request: Request, session: DbSession, status: str = "", page: str = "1") -> Response:
    number, per_page = clamp_page(int(page) if page.isdigit() else 1)
    chosen = LicenseStatus(status) if status in {item.value for item in LicenseStatus} else None
    return render(
        request,
        "admin/licenses/list.html",
        {
            "page": service.page_licenses(session, number=number, per_page=per_page, status=chosen),
            "statuses": LicenseStatus,
            "current_status": chosen,
        },
    )


def _detail_page(
    request: Request,
    session: Session,
    settings: Settings,
    license_id: uuid.UUID,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    license_ = service.get_license(session, license_id)
    context: dict[str, Any] = {
        "license": license_,
        "allowed": ALLOWED_TRANSITIONS[license_.status],
        "statuses": LicenseStatus,
        "contact_email": license_contact(session, license_.id) or "",
        "history": subject_history(session, [str(license_.id)]),
        "engines": active_activations(session, license_.id),
        "default_days": settings.approved_license_days,
        "errors": errors or {},
        "values": values or {},
    }
    return render(request, "admin/licenses/detail.html", context, status_code=status_code)


@admin_router.get("/{license_id}", summary="A license, its actions and history")
def license_detail(
    request: Request, license_id: str, session: DbSession, settings: AppSettings
) -> Response:
    return _detail_page(request, session, settings, _license_id(license_id))


@admin_router.post("/{license_id}/suspend", summary="Suspend a license")
def suspend(
    request: Request,
    license_id: str,
    fields: FormFields,
    session: DbSession,
    settings: AppSettings,
    mail: Mail,
    admin: CurrentAdmin,
) -> Response:
    parsed = _license_id(license_id)
    outcome = forms.read_reason(fields, "the reason for suspending")
    if outcome.data is None:
        return _detail_page(
            request,
            session,
            settings,
            parsed,
            errors=outcome.errors,
            values=outcome.values,
            status_code=FORM_STATUS,
        )
    reason = outcome.data
    return form_action(
        request,
        session,
        mail,
        lambda: service.suspend_license(session, parsed, reason=reason, actor=admin.email),
        success_url=_detail_url(parsed),
        message="License suspended: the portal refuses it until it is reinstated.",
        failure_url=_detail_url(parsed),
    )


@admin_router.post("/{license_id}/reinstate", summary="Reinstate a suspended license")
def reinstate(
    request: Request, license_id: str, session: DbSession, mail: Mail, admin: CurrentAdmin
) -> Response:
    parsed = _license_id(license_id)
    return form_action(
        request,
        session,
        mail,
        lambda: service.reinstate_license(session, parsed, actor=admin.email),
        success_url=_detail_url(parsed),
        message="License reinstated.",
        failure_url=_detail_url(parsed),
    )


@admin_router.post("/{license_id}/revoke", summary="Revoke a license for good")
def revoke(
    request: Request,
    license_id: str,
    fields: FormFields,
    session: DbSession,
    settings: AppSettings,
    mail: Mail,
    admin: CurrentAdmin,
) -> Response:
    parsed = _license_id(license_id)
    outcome = forms.read_reason(fields, "the reason for revoking (published)")
    if outcome.data is None:
        return _detail_page(
            request,
            session,
            settings,
            parsed,
            errors=outcome.errors,
            values=outcome.values,
            status_code=FORM_STATUS,
        )
    reason = outcome.data
    return form_action(
        request,
        session,
        mail,
        lambda: service.revoke_license(
            session,
            parsed,
            reason=reason,
            repository=open_repository(settings),
            actor=admin.email,
        ),
        success_url=_detail_url(parsed),
        message="License revoked; the revocation list was published.",
        failure_url=_detail_url(parsed),
    )


@admin_router.post("/{license_id}/renew", summary="Extend a license")
def renew(
    request: Request,
    license_id: str,
    fields: FormFields,
    session: DbSession,
    settings: AppSettings,
    mail: Mail,
    admin: CurrentAdmin,
    signing_key: LicenseSigningKey,
) -> Response:
    parsed = _license_id(license_id)
    outcome = forms.read_renewal(fields, default_days=settings.approved_license_days)
    if outcome.data is None:
        return _detail_page(
            request,
            session,
            settings,
            parsed,
            errors=outcome.errors,
            values=outcome.values,
            status_code=FORM_STATUS,
        )
    renewal = outcome.data

    def renew_and_send() -> None:
        issued = service.renew_license(
            session,
            parsed,
            days=renewal.days,
            signing_key=signing_key,
            issuer=settings.portal_url,
            actor=admin.email,
        )
        if renewal.contact_email:
            delivery.send_download_link(
                session,
                settings,
                mail,
                issued.license,
                to=renewal.contact_email,
                actor=admin.email,
            )

    sent = (
        f" and a download link e-mailed to {renewal.contact_email}" if renewal.contact_email else ""
    )
    return form_action(
        request,
        session,
        mail,
        renew_and_send,
        success_url=_detail_url(parsed),
        message=f"License renewed by {renewal.days} days{sent}.",
        failure_url=_detail_url(parsed),
    )


@admin_router.post("/{license_id}/send-link", summary="E-mail a new download link")
def send_link(
    request: Request,
    license_id: str,
    fields: FormFields,
    session: DbSession,
    settings: AppSettings,
    mail: Mail,
    admin: CurrentAdmin,
) -> Response:
    parsed = _license_id(license_id)
    outcome = forms.read_contact(fields)
    if outcome.data is None:
        return _detail_page(
            request,
            session,
            settings,
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
        lambda: delivery.send_download_link(
            session,
            settings,
            mail,
            service.get_license(session, parsed),
            to=contact,
            actor=admin.email,
        ),
        success_url=_detail_url(parsed),
        message=f"A new one-time download link was e-mailed to {contact}; earlier links no "
        "longer work.",
        failure_url=_detail_url(parsed),
    )


#### The organisation's download ####


@download_router.get("/licenses/download/{token}", summary="The license download page")
def download_page(
    request: Request, token: str, session: DbSession, settings: AppSettings
) -> Response:
    license_ = delivery.license_for_download(session, token)
    return render(
        request,
        "licenses/download.html",
        {
            "license": license_,
            "token": token,
            "setup": delivery.setup_instructions(settings, license_),
            "files": (delivery.LICENSE_FILE, delivery.ROOT_FILE, delivery.SETUP_FILE),
        },
    )


@download_router.post("/licenses/download/{token}", summary="Download the license, once")
def download(token: str, session: DbSession, settings: AppSettings) -> Response:
    package = delivery.download_package(session, settings, token)
    return Response(
        package.content,
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{package.filename}"'},
    )
