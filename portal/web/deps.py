"""The request's dependencies, as ``Annotated`` aliases for route signatures.

``DbSession`` is the request's unit of work: it commits when the route
returns, rolls back when it raises, and only after a commit delivers the
e-mail the services queued on ``Mail``. It is function-scoped, so the commit
happens before the response is sent: a failed commit is a failed request.
A domain error with ``keeps_transaction`` (an audited refusal) is the one
exception that commits: its audit event must outlive the refusal.

``LicensedEngine`` authenticates an engine by the license token it sends as a
bearer token (``portal.licenses.bearer``); every engine API route depends on it.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Annotated

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import Depends, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from portal.admin.models import Admin
from portal.admin.service import admin_for_session
from portal.errors import AuthenticationRequiredError, PortalError
from portal.licenses.bearer import EngineAuthenticator
from portal.licenses.bearer import LicensedEngine as AuthenticatedEngine
from portal.mail.service import Postbox
from portal.repository.published import PublishedRepository
from portal.repository.service import license_signing_key
from portal.settings import Settings

if TYPE_CHECKING:
    from collections.abc import Iterator


def app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


AppSettings = Annotated[Settings, Depends(app_settings)]


def database_session(request: Request) -> Iterator[Session]:
    settings: Settings = request.app.state.settings
    postbox = Postbox(
        transport=request.app.state.mail_transport,
        sender=settings.email_from,
        undelivered_dir=settings.outbox_dir / "undelivered",
    )
    request.state.postbox = postbox
    session: Session = request.app.state.session_factory()
    try:
        yield session
        session.commit()
    except PortalError as error:
        if not error.keeps_transaction:
            session.rollback()
            postbox.discard()
            raise
        session.commit()
        postbox.deliver()
        raise
    except BaseException:
        session.rollback()
        postbox.discard()
        raise
    finally:
        session.close()
    postbox.deliver()


DbSession = Annotated[Session, Depends(database_session, scope="function")]


def request_postbox(request: Request, _session: DbSession) -> Postbox:
    postbox: Postbox = request.state.postbox
    return postbox


Mail = Annotated[Postbox, Depends(request_postbox)]


def session_token(request: Request) -> str:
    token: str = request.cookies.get(request.app.state.cookie_names.session, "")
    return token


def current_admin(request: Request, session: DbSession) -> Admin:
    """The signed-in administrator.

    Raises:
        AuthenticationRequiredError: No valid session (HTML pages redirect to the login).
    """
    admin = admin_for_session(session, session_token(request))
    if admin is None:
        raise AuthenticationRequiredError("sign in as an administrator to continue")
    # Pages show who is signed in, even an error page after a rollback expired ``admin``.
    request.state.admin_email = admin.email
    return admin


CurrentAdmin = Annotated[Admin, Depends(current_admin)]


def optional_admin(request: Request, session: DbSession) -> Admin | None:
    admin = admin_for_session(session, session_token(request))
    request.state.admin_email = admin.email if admin else None
    return admin


OptionalAdmin = Annotated[Admin | None, Depends(optional_admin)]


def license_key(settings: AppSettings) -> Ed25519PrivateKey:
    """The current license signing key (decrypted per request that signs)."""
    return license_signing_key(settings).key


LicenseSigningKey = Annotated[Ed25519PrivateKey, Depends(license_key)]


#### The engine API ####


async def published_repository(request: Request) -> PublishedRepository:
    published: PublishedRepository = request.app.state.published_repository
    return published


Published = Annotated[PublishedRepository, Depends(published_repository)]


async def licensed_engine(request: Request, published: Published) -> AuthenticatedEngine:
    """The license an engine request is authenticated with (401/403 otherwise).

    Answered on the event loop when everything needed is remembered (the
    common case: an engine polling ``timestamp.json``); otherwise the token is
    verified and the license's row read in a worker thread, on a connection
    of its own, outside the request's unit of work.
    """
    authenticator: EngineAuthenticator = request.app.state.engine_authenticator
    authorization = request.headers.get("authorization")
    state = published.state()
    engine = authenticator.authenticate_from_memory(
        authorization, trusted_keys=state.license_keys, revoked=state.revoked_license_ids
    )
    if engine is not None:
        return engine
    return await run_in_threadpool(
        functools.partial(
            authenticator.authenticate,
            authorization,
            trusted_keys=state.license_keys,
            revoked=state.revoked_license_ids,
        )
    )


LicensedEngine = Annotated[AuthenticatedEngine, Depends(licensed_engine)]
