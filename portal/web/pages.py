"""Rendering pages and answering forms: every HTML response goes through here.

``render`` gives each template the CSRF token, the pending flash messages and
the signed-in administrator; ``redirect`` answers a successful form with a
303 and a flash message (post, redirect, get).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Final
from urllib.parse import urlsplit

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse
from starlette.templating import Jinja2Templates

from portal.errors import ConflictError, InvalidInputError
from portal.forms import form_values
from portal.templating import template_environment
from portal.web.security import (
    CSRF_FIELD,
    csrf_token,
    decode_flash,
    delete_cookie,
    encode_flash,
    set_cookie,
    set_new_csrf_cookie,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from sqlalchemy.orm import Session
    from starlette.responses import Response

    from portal.mail.service import Postbox

FLASH_MAX_AGE: Final = 120

templates = Jinja2Templates(env=template_environment())


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
) -> Response:
    settings = request.app.state.settings
    names = request.app.state.cookie_names
    flash_cookie = request.cookies.get(names.flash)
    page_context: dict[str, Any] = {
        "csrf_field": CSRF_FIELD,
        "csrf_token": csrf_token(request),
        "flash_messages": decode_flash(settings, flash_cookie) if flash_cookie else [],
        "current_admin": getattr(request.state, "admin_email", None),
        "values": {},
        "errors": {},
        **(context or {}),
    }
    response = templates.TemplateResponse(
        request, template, page_context, status_code=status_code, headers=headers
    )
    if flash_cookie:
        delete_cookie(response, settings, names.flash)
    set_new_csrf_cookie(request, response)
    return response


def redirect(
    request: Request, url: str, message: str | None = None, *, category: str = "success"
) -> RedirectResponse:
    """303 to ``url`` (a path of this site), with a flash message for the next page."""
    response = RedirectResponse(safe_local_path(url, default="/"), status_code=303)
    if message:
        settings = request.app.state.settings
        set_cookie(
            response,
            settings,
            request.app.state.cookie_names.flash,
            encode_flash(settings, [{"category": category, "text": message}]),
            max_age=FLASH_MAX_AGE,
        )
    return response


def safe_local_path(url: str, *, default: str) -> str:
    """``url`` if it is a path on this site, else ``default`` (no open redirects)."""
    parts = urlsplit(url)
    if parts.scheme or parts.netloc or not url.startswith("/") or url.startswith("//"):
        return default
    if "\\" in url:
        return default
    return url


async def form_fields(request: Request) -> dict[str, str]:
    """The submitted form's text fields (parsed once; the CSRF check read them first)."""
    return form_values(await request.form())


FormFields = Annotated[dict[str, str], Depends(form_fields)]


def form_action(
    request: Request,
    session: Session,
    postbox: Postbox,
    action: Callable[[], object],
    *,
    success_url: str,
    message: str,
    failure_url: str,
) -> RedirectResponse:
    """Run one service call in a savepoint; redirect with its outcome.

    A domain refusal (a move the state machine forbids, a missing input) undoes
    the call's changes and its queued e-mail and returns to ``failure_url``
    with the reason as an error message; other errors propagate.
    """
    queued = len(postbox.queued)
    try:
        with session.begin_nested():
            action()
    except (ConflictError, InvalidInputError) as error:
        del postbox.queued[queued:]
        return redirect(request, failure_url, _sentence(str(error)), category="error")
    return redirect(request, success_url, message)


def _sentence(text: str) -> str:
    text = text.strip()
    if not text:
        return text
    return text[0].upper() + text[1:] + ("" if text.endswith((".", "!", "?")) else ".")
