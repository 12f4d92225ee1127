"""The web portal's FastAPI application: ``create_app(settings)``.

Pages are server-rendered and work without JavaScript (there is none: the
Content-Security-Policy allows no script). Every route passes the CSRF check
(``security.require_csrf``, an app-wide dependency) and every response gets
the security headers. Routes live with their domain (``portal/<domain>/routes.py``).

The engine API (``/tuf/`` update repository, ``/api/v1/`` activations,
leases, usage and feedback) answers JSON, authenticates each request with the
license bearer token and is exempt from CSRF (it never reads cookies). While the app runs,
its lifespan keeps the repository's timestamp fresh
(``portal.repository.schedule``).
"""

from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import TYPE_CHECKING

from fastapi import Depends, FastAPI, Request
from fastapi.staticfiles import StaticFiles
from sqlalchemy.orm import Session, sessionmaker
from starlette.responses import Response

from portal.admin import routes as admin_routes
from portal.applications import routes as application_routes
from portal.dashboard import routes as dashboard_routes
from portal.db import make_engine
from portal.engines import routes as engine_routes
from portal.events import routes as event_routes
from portal.feedback import routes as feedback_routes
from portal.licenses import routes as license_routes
from portal.licenses.bearer import EngineAuthenticator
from portal.mail.service import transport_for
from portal.repository import routes as repository_routes
from portal.repository.published import PublishedRepository
from portal.repository.schedule import refreshing
from portal.settings import Settings, get_settings
from portal.templating import STATIC_DIR
from portal.usage import routes as usage_routes
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
    from collections.abc import AsyncIterator, Callable

    from sqlalchemy.engine import Connection, Engine

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
    pass one bound to their transaction (then also used for the engine API's
    reads, which otherwise run without a transaction).
    """
    settings = settings or get_settings()
    engines: list[Engine] = []
    license_reader: Callable[[], contextlib.AbstractContextManager[Session | Connection]]
    if session_factory is None:
        engine = make_engine(settings.database_url, pool_pre_ping=True)
        session_factory = sessionmaker(bind=engine, expire_on_commit=False)
        # Engine requests read one license row, far more often than anything
        # else: a pool of its own, without transactions (one round trip instead
        # of BEGIN, SELECT, COMMIT) and without a ping per checkout (a broken
        # connection fails one request and the pool reconnects).
        autocommit = {"isolation_level": "AUTOCOMMIT"} if engine.dialect.name != "sqlite" else {}
        reader = make_engine(settings.database_url, **autocommit)
        engines = [engine, reader]
        license_reader = reader.connect
    else:
        license_reader = session_factory

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        async with refreshing(settings):
            yield
        for owned in engines:
            owned.dispose()

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
    app.state.engine_authenticator = EngineAuthenticator(
        license_reader,
        token_ttl=timedelta(seconds=settings.engine_token_cache_seconds),
        status_ttl=timedelta(seconds=settings.engine_status_cache_seconds),
    )
    app.state.cookie_names = CookieNames.for_settings(settings)
    app.state.mail_transport = mail_transport or transport_for(settings)
    app.state.rate_limiters = {
        "apply": RateLimiter(settings.apply_rate_limit, settings.apply_rate_window_seconds),
        "login": RateLimiter(settings.login_rate_limit, settings.login_rate_window_seconds),
    }
    app.state.published_repository = PublishedRepository(settings)
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
    app.include_router(dashboard_routes.admin_router)
    app.include_router(dashboard_routes.contact_router)
    app.include_router(engine_routes.admin_router)
    app.include_router(event_routes.router)
    app.include_router(repository_routes.router)
    app.include_router(engine_routes.api_router)
    app.include_router(usage_routes.router)
    app.include_router(feedback_routes.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
