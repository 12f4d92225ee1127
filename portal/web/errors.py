"""Errors mapped to responses once: JSON for the engine API (``/api/``, ``/tuf/``)
and ``/healthz``, HTML pages (``templates/errors/<status>.html``) for everything else.

- JSON errors are ``{"error": CODE, "detail": MESSAGE}``: ``CODE`` is the domain
  error's machine-readable ``error_code`` (``license_revoked``...) or, for other
  errors, a code for the HTTP status (``not_found``, ``request_too_large``...).
  ``detail`` is the message, or what the error's ``json_detail`` gives instead
  (the per-record problems of ``invalid_batch``).
- ``AuthenticationRequiredError`` on a page redirects (303) to the login, which
  returns to the page afterwards.
- A domain error's own headers go with it (``Retry-After`` of
  ``RateLimitedError``, ``WWW-Authenticate`` of the engine API's 401).
- Unexpected errors, configuration and licensing failures are logged and shown
  as a bare 500 page: their messages are for operators, not visitors.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final
from urllib.parse import quote

from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from jinja2 import TemplateNotFound
from starlette.exceptions import HTTPException as StarletteHTTPException

from licensing.exceptions import LicensingError
from portal.errors import AuthenticationRequiredError, PortalError
from portal.templating import template_environment
from portal.web.pages import render, safe_local_path
from portal.web.security import CONTENT_SECURITY_POLICY, is_engine_api

if TYPE_CHECKING:
    from fastapi import FastAPI, Request
    from starlette.responses import Response

logger = logging.getLogger(__name__)

TITLES: Final = {
    400: "Bad request",
    401: "Sign in required",
    403: "Forbidden",
    404: "Page not found",
    405: "Method not allowed",
    409: "That cannot be done now",
    410: "Link no longer valid",
    413: "Request too large",
    422: "Unprocessable request",
    429: "Too many requests",
    500: "Something went wrong",
}
# The machine-readable ``error`` of JSON answers without a domain error code.
STATUS_CODES: Final = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    410: "gone",
    413: "request_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "rate_limited",
    500: "server_error",
}
GENERIC_500: Final = "The portal could not complete this request. It has been logged."


def wants_json(request: Request) -> bool:
    path = request.url.path
    return is_engine_api(path) or path == "/healthz"


def error_response(
    request: Request,
    status: int,
    message: str,
    *,
    headers: dict[str, str] | None = None,
    code: str | None = None,
    detail: object = None,
) -> Response:
    if wants_json(request):
        return JSONResponse(
            {
                "error": code or STATUS_CODES.get(status, "error"),
                "detail": message if detail is None else detail,
            },
            status_code=status,
            headers=headers,
        )
    name = f"errors/{status}.html"
    try:
        template_environment().get_template(name)
    except TemplateNotFound:
        name = "errors/error.html"
    context = {"status": status, "title": TITLES.get(status, "Error"), "message": message}
    try:
        return render(request, name, context, status_code=status, headers=headers)
    except Exception:  # a page that cannot render must still answer
        logger.exception("error page %s failed to render", name)
        return JSONResponse({"detail": message}, status_code=status, headers=headers)


def _login_redirect(request: Request) -> Response:
    target = request.url.path if request.method == "GET" else "/admin/applications"
    target = safe_local_path(target, default="/admin/applications")
    return RedirectResponse(f"/admin/login?next={quote(target, safe='/')}", status_code=303)


async def handle_portal_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, PortalError)
    if isinstance(error, AuthenticationRequiredError) and not wants_json(request):
        return _login_redirect(request)
    if error.status_code >= 500:
        logger.error("%s: %s", type(error).__name__, error)
        return error_response(request, error.status_code, GENERIC_500)
    return error_response(
        request,
        error.status_code,
        str(error),
        headers=error.response_headers() or None,
        code=error.error_code,
        detail=error.json_detail(),
    )


async def handle_licensing_error(request: Request, error: Exception) -> Response:
    logger.error("licensing failure: %s: %s", type(error).__name__, error)
    return error_response(request, 500, GENERIC_500)


async def handle_http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, StarletteHTTPException)
    headers = dict(error.headers) if error.headers else None
    return error_response(request, error.status_code, str(error.detail), headers=headers)


async def handle_validation_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, RequestValidationError)
    if wants_json(request):
        return JSONResponse(
            {"error": STATUS_CODES[422], "detail": jsonable_encoder(error.errors())},
            status_code=422,
        )
    return error_response(request, 404, "There is no such page.")


async def handle_unexpected_error(request: Request, error: Exception) -> Response:
    logger.error("unexpected %s on %s %s", type(error).__name__, request.method, request.url.path)
    response = error_response(request, 500, GENERIC_500)
    # Server errors are answered outside the middleware that adds these.
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def register_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(PortalError, handle_portal_error)
    app.add_exception_handler(LicensingError, handle_licensing_error)
    app.add_exception_handler(StarletteHTTPException, handle_http_error)
    app.add_exception_handler(RequestValidationError, handle_validation_error)
    app.add_exception_handler(Exception, handle_unexpected_error)
