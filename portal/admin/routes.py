"""Signing in and out, administrators and their invitations.

``/admin/login`` is the only ``/admin`` page without a session; invitations
are accepted at ``/invitations/{token}``, outside ``/admin``, since the
invited person has no session yet.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from portal.admin import forms, service
from portal.web.deps import AppSettings, CurrentAdmin, DbSession, Mail, OptionalAdmin
from portal.web.deps import current_admin as require_admin
from portal.web.pages import FormFields, form_action, redirect, render, safe_local_path
from portal.web.security import client_address, delete_cookie, rate_limit, set_cookie

login_router = APIRouter()
admin_router = APIRouter(prefix="/admin", dependencies=[Depends(require_admin)])
invitation_router = APIRouter()

FORM_STATUS = 422
HOME = "/admin/applications"
LOGIN_FAILED = "The e-mail address, password or code is not right, or sign-in is paused."


def _login_page(
    request: Request,
    *,
    next_url: str,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "admin/login.html",
        {"next_url": next_url, "values": values or {}, "errors": errors or {}},
        status_code=status_code,
    )


@login_router.get("/admin/login", summary="The administrators' sign-in form")
def login_form(request: Request, admin: OptionalAdmin, next: str = HOME) -> Response:  # noqa: A002
    next_url = safe_local_path(next, default=HOME)
    if admin is not None:
        return redirect(request, next_url)
    return _login_page(request, next_url=next_url)


@login_router.post("/admin/login", summary="Sign in", dependencies=[Depends(rate_limit("login"))])
def login(
    request: Request,
    fields: FormFields,
    session: DbSession,
    settings: AppSettings,
    mail: Mail,
) -> Response:
    next_url = safe_local_path(fields.get("next", HOME), default=HOME)
    outcome = forms.read_login(fields)
    if outcome.data is None:
        return _login_page(
            request,
            next_url=next_url,
            values=outcome.values,
            errors=outcome.errors,
            status_code=FORM_STATUS,
        )
    credentials = outcome.data
    admin = service.authenticate(
        session,
        settings,
        mail,
        email=credentials.email,
        password=credentials.password,
        code=credentials.code,
        actor=f"web:{client_address(request)}",
    )
    if admin is None:
        return _login_page(
            request,
            next_url=next_url,
            values=outcome.values,
            errors={"form": LOGIN_FAILED},
            status_code=FORM_STATUS,
        )
    token = service.start_session(session, settings, admin)
    response = redirect(request, next_url, f"Signed in as {admin.email}.")
    set_cookie(
        response,
        settings,
        request.app.state.cookie_names.session,
        token,
        max_age=int(settings.session_lifetime.total_seconds()),
    )
    return response


@admin_router.post("/logout", summary="Sign out")
def logout(
    request: Request, session: DbSession, settings: AppSettings, admin: CurrentAdmin
) -> Response:
    names = request.app.state.cookie_names
    service.end_session(session, request.cookies.get(names.session, ""), admin=admin)
    response = redirect(request, "/admin/login", "Signed out.")
    delete_cookie(response, settings, names.session)
    return response


@admin_router.get("", summary="The administrators' start page")
def home(request: Request) -> Response:
    return redirect(request, HOME)


@admin_router.get("/admins", summary="Administrators and invitations")
def admins(request: Request, session: DbSession) -> Response:
    return render(request, "admin/admins/list.html", {"admins": service.list_admins(session)})


@admin_router.post("/admins/invite", summary="Invite an administrator")
def invite(
    request: Request,
    fields: FormFields,
    session: DbSession,
    settings: AppSettings,
    mail: Mail,
    admin: CurrentAdmin,
) -> Response:
    outcome = forms.read_invitation(fields)
    if outcome.data is None:
        return render(
            request,
            "admin/admins/list.html",
            {
                "admins": service.list_admins(session),
                "values": outcome.values,
                "errors": outcome.errors,
            },
            status_code=FORM_STATUS,
        )
    email = outcome.data
    return form_action(
        request,
        session,
        mail,
        lambda: service.invite_admin(session, settings, mail, email, inviter=admin),
        success_url="/admin/admins",
        message=f"Invitation e-mailed to {email}.",
        failure_url="/admin/admins",
    )


def _invitation_page(
    request: Request,
    token: str,
    session: DbSession,
    *,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    admin = service.invited_admin(session, token)
    return render(
        request,
        "admin/admins/enrol.html",
        {
            "invited": admin,
            "token": token,
            "otpauth_uri": service.invitation_totp_uri(admin),
            "errors": errors or {},
        },
        status_code=status_code,
    )


@invitation_router.get("/invitations/{token}", summary="Accept an invitation")
def invitation(request: Request, token: str, session: DbSession) -> Response:
    return _invitation_page(request, token, session)


@invitation_router.post("/invitations/{token}", summary="Set a password and enrol TOTP")
def accept_invitation(
    request: Request, token: str, fields: FormFields, session: DbSession, mail: Mail
) -> Response:
    outcome = forms.read_enrolment(fields)
    if outcome.data is None:
        return _invitation_page(
            request, token, session, errors=outcome.errors, status_code=FORM_STATUS
        )
    enrolment = outcome.data
    return form_action(
        request,
        session,
        mail,
        lambda: service.accept_invitation(
            session, token, password=enrolment.password, code=enrolment.code
        ),
        success_url="/admin/login",
        message="Your account is ready: sign in with your password and a new code.",
        failure_url=f"/invitations/{token}",
    )
