"""The web portal's FastAPI application: ``create_app(settings)``.

Pages are server-rendered and work without JavaScript (there is none: the
Content-Security-Policy allows no script). Every route passes the CSRF check
(``security.require_csrf``, an app-wide dependency) and every response gets
the security headers. Routes live with their domain (``portal/<domain>/routes.py``).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from fastapi import Depends, FastAPI, Request
from fastapi.staticfiles import StaticFiles
from sqlalchemy.orm import Session, sessionmaker
from starlette.responses import Response

from portal.admin import routes as admin_routes
from portal.applications import routes as application_routes
from portal.db import make_engine
from portal.events import routes as event_routes
from portal.licenses import routes as license_routes
from portal.mail.service import transport_for
from portal.settings import Settings, get_settings
from portal.templating import STATIC_DIR
from portal.web import health
from portal.web.deps import OptionalAdmin
from portal.web.errors import register_error_handlers
from portal.web.pages import render
from portal.web.security import (
    CookieNames,
    RateLimiter,
    SecurityHeadersMiddleware,
    require_csrf,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from portal.mail.service import MailTransport


def _home(request: Request, _admin: OptionalAdmin) -> Response:
    return render(request, "home.html")


def create_app(
    settings: Settings | None = None,
    *,
    session_factory: sessionmaker[Session] | None = None,
    mail_transport: MailTransport | None = None,
) -> FastAPI:
    """The portal app for ``settings`` (default: the process's settings).

    ``session_factory`` defaults to sessions on ``settings.database_url``; tests
    pass one bound to their transaction.
    """
    settings = settings or get_settings()
    engine = None
    if session_factory is None:
        engine = make_engine(settings.database_url, pool_pre_ping=True)
        session_factory = sessionmaker(bind=engine, expire_on_commit=False)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        if engine is not None:
            engine.dispose()

    app = FastAPI(
        title="Vigil portal",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        dependencies=[Depends(require_csrf)],
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.session_factory = session_factory
    app.state.cookie_names = CookieNames.for_settings(settings)
    app.state.mail_transport = mail_transport or transport_for(settings)
    app.state.rate_limiters = {
        "apply": RateLimiter(settings.apply_rate_limit, settings.apply_rate_window_seconds),
        "login": RateLimiter(settings.login_rate_limit, settings.login_rate_window_seconds),
    }
    app.add_middleware(SecurityHeadersMiddleware, hsts=settings.session_cookie_secure)
    register_error_handlers(app)

    app.add_api_route("/", _home, methods=["GET"], summary="The portal's front page")
    app.include_router(health.router)
    app.include_router(application_routes.public_router)
    app.include_router(application_routes.admin_router)
    app.include_router(admin_routes.login_router)
    app.include_router(admin_routes.admin_router)
    app.include_router(admin_routes.invitation_router)
    app.include_router(license_routes.admin_router)
    app.include_router(license_routes.download_router)
    app.include_router(event_routes.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
