"""Fixtures for the portal tests.

- The schema is built once per run by the Alembic migrations (never
  ``create_all``), on a temporary SQLite file, or on PostgreSQL when
  ``VIGIL_TEST_DATABASE_URL`` is set (its ``public`` schema is reset first).
- Each test runs inside one outer transaction that is rolled back at the end;
  sessions join it with ``join_transaction_mode="create_savepoint"``, so code
  under test may commit (``session_scope``) without anything reaching the
  database (SQLAlchemy's "joining a Session into an external transaction").
- Portal state on disk (keys, repository) lives in a temporary
  ``VIGIL_PORTAL_HOME`` per test.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

import portal.db
from portal.admin import credentials
from portal.admin.service import create_admin
from portal.bundles import service as bundle_service
from portal.bundles.models import Channel
from portal.db import make_engine, upgrade_database
from portal.licenses import service as license_service
from portal.organisations.service import get_or_create_organisation
from portal.repository.service import (
    initialise_portal,
    license_signing_key,
    open_repository,
)
from portal.settings import Settings, get_settings
from portal.web.app import create_app
from tests.portal.support import (
    ACTOR,
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    MODEL_MANIFEST,
    PASSPHRASE,
    SESSION_SECRET,
    AdminAccount,
    Licensed,
    PortalCli,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from sqlalchemy.engine import Connection, Engine

    from licensing.repository import Repository
    from portal.bundles.models import Bundle
    from portal.licenses.models import License

TEST_DATABASE_URL_VARIABLE = "VIGIL_TEST_DATABASE_URL"


@pytest.fixture(autouse=True)
def _no_fsync(monkeypatch: pytest.MonkeyPatch) -> None:
    # Durability is not under test; fsync only makes a loaded CI machine wait.
    monkeypatch.setattr(os, "fsync", lambda _fd: None)


@pytest.fixture(autouse=True)
def _cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    # argon2's defaults take ~0.2 s a hash by design; the tests check behaviour, not cost.
    monkeypatch.setattr(
        credentials, "password_hasher", PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)
    )


#### Database ####


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = os.environ.get(TEST_DATABASE_URL_VARIABLE)
    if url:
        return url
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    test_engine = make_engine(database_url)
    if test_engine.dialect.name == "postgresql":
        with test_engine.begin() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
    upgrade_database(test_engine)
    yield test_engine
    test_engine.dispose()


@pytest.fixture
def connection(engine: Engine) -> Iterator[Connection]:
    with engine.connect() as outer:
        transaction = outer.begin()
        try:
            yield outer
        finally:
            transaction.rollback()


@pytest.fixture
def session_factory(connection: Connection) -> sessionmaker[Session]:
    return sessionmaker(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )


@pytest.fixture
def session(session_factory: sessionmaker[Session]) -> Iterator[Session]:
    with session_factory() as test_session:
        yield test_session


#### Settings and state on disk ####


@pytest.fixture
def portal_home(tmp_path: Path) -> Path:
    return tmp_path / "portal-home"


@pytest.fixture
def portal_env(
    monkeypatch: pytest.MonkeyPatch, portal_home: Path, database_url: str
) -> Iterator[None]:
    """The environment of a development portal with encrypted keys."""
    for name in list(os.environ):
        if name.startswith("VIGIL_") and name != TEST_DATABASE_URL_VARIABLE:
            monkeypatch.delenv(name)
    monkeypatch.setenv("VIGIL_PORTAL_HOME", str(portal_home))
    monkeypatch.setenv("VIGIL_ENVIRONMENT", "development")
    monkeypatch.setenv("VIGIL_KEY_PASSPHRASE", PASSPHRASE)
    monkeypatch.setenv("VIGIL_DATABASE_URL", database_url)
    # The test client speaks plain http; one test checks the https cookie flags.
    monkeypatch.setenv("VIGIL_SESSION_COOKIE_SECURE", "false")
    monkeypatch.setenv("VIGIL_SESSION_SECRET", SESSION_SECRET)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def settings(portal_env: None) -> Settings:
    return get_settings()


@pytest.fixture
def initialised(session: Session, settings: Settings) -> Settings:
    """A portal after ``init``: keys, repository and published license keys."""
    initialise_portal(session, settings, actor=ACTOR)
    return settings


@pytest.fixture
def repository(initialised: Settings) -> Repository:
    return open_repository(initialised)


#### Factories ####


@pytest.fixture
def make_license(session: Session, initialised: Settings) -> Callable[..., License]:
    def factory(org: str = "Example Chat Ltd", **overrides: Any) -> License:
        values: dict[str, Any] = {
            "days": 30,
            "channels": ["stable"],
            "max_engines": 2,
            "features": [],
            "signing_key": license_signing_key(initialised).key,
            "issuer": initialised.portal_url,
            "actor": ACTOR,
        }
        values.update(overrides)
        organisation = get_or_create_organisation(session, org, actor=ACTOR)
        return license_service.issue_license(session, organisation, **values).license

    return factory


@pytest.fixture
def make_licensed(session: Session, initialised: Settings) -> Callable[..., Licensed]:
    """A license and the token its organisation downloaded. ``expired=True``
    makes one that expired yesterday; ``status`` suspends or revokes it.
    """

    def factory(
        org: str = "Example Chat Ltd",
        *,
        channels: tuple[str, ...] = ("stable",),
        max_engines: int = 2,
        expired: bool = False,
        status: str = "active",
    ) -> Licensed:
        signing_key = license_signing_key(initialised).key
        organisation = get_or_create_organisation(session, org, actor=ACTOR)
        issued = license_service.issue_license(
            session,
            organisation,
            days=30,
            channels=channels,
            max_engines=max_engines,
            signing_key=signing_key,
            issuer=initialised.portal_url,
            actor=ACTOR,
        )
        license_ = issued.license
        token = issued.token
        if expired:
            now = datetime.now(UTC).replace(microsecond=0)
            license_.issued_at = license_.not_before = now - timedelta(days=31)
            license_.expires_at = now - timedelta(days=1)
            session.flush()
            token = license_service.sign_license(
                license_, signing_key=signing_key, issuer=initialised.portal_url
            )
        if status == "suspended":
            license_service.suspend_license(session, license_.id, reason="unpaid", actor=ACTOR)
        elif status == "revoked":
            license_service.revoke_license(
                session,
                license_.id,
                reason="misuse",
                repository=open_repository(initialised),
                actor=ACTOR,
            )
        return Licensed(license=license_, token=token)

    return factory


@pytest.fixture
def published_bundles(
    session: Session, initialised: Settings, make_model_dir: Callable[..., Path]
) -> dict[str, Bundle]:
    """One bundle published on ``stable`` and a newer one on ``beta``, by channel."""
    repository = open_repository(initialised)
    return {
        channel: bundle_service.publish_bundle(
            session,
            repository,
            make_model_dir(),
            version=version,
            channel=Channel(channel),
            actor=ACTOR,
        )
        for channel, version in (("stable", "2026.11.0"), ("beta", "2026.12.0"))
    }


@pytest.fixture
def make_model_dir(tmp_path: Path) -> Callable[..., Path]:
    """A model directory as ``vigil-portal models train`` writes it, with
    placeholder bytes for the model (bundles treat model.skops as bytes).
    """
    counter = iter(range(1000))

    def factory(**manifest_overrides: Any) -> Path:
        directory = tmp_path / f"model-{next(counter)}"
        directory.mkdir()
        (directory / "model.skops").write_bytes(b"PK\x03\x04 placeholder skops bytes")
        (directory / "MODEL_CARD.md").write_text("# Placeholder model\n", encoding="utf-8")
        manifest = {**MODEL_MANIFEST, **manifest_overrides}
        (directory / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
        return directory

    return factory


#### Command line ####


@pytest.fixture
def cli(
    monkeypatch: pytest.MonkeyPatch,
    portal_env: None,
    engine: Engine,
    session_factory: sessionmaker[Session],
) -> PortalCli:
    """``vigil-portal`` in-process, its sessions joined to the test transaction."""
    monkeypatch.setattr(portal.db, "get_engine", lambda: engine)
    monkeypatch.setattr(portal.db, "get_sessionmaker", lambda: session_factory)
    return PortalCli(CliRunner())


#### Web ####


@pytest.fixture
def make_client(
    initialised: Settings, session_factory: sessionmaker[Session]
) -> Callable[..., TestClient]:
    """A test client of the portal app on the test transaction; keyword
    arguments override settings (``make_client(login_rate_limit=2)``).
    """

    def factory(
        *,
        base_url: str = "http://testserver",
        raise_server_exceptions: bool = True,
        **overrides: Any,
    ) -> TestClient:
        settings = initialised.model_copy(update=overrides) if overrides else initialised
        app = create_app(settings, session_factory=session_factory)
        return TestClient(
            app,
            base_url=base_url,
            follow_redirects=False,
            raise_server_exceptions=raise_server_exceptions,
        )

    return factory


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()


@pytest.fixture
def admin_account(session: Session, initialised: Settings) -> AdminAccount:
    """An enrolled administrator (in the test transaction), with its TOTP secret."""
    admin, uri = create_admin(session, ADMIN_EMAIL, ADMIN_PASSWORD, actor=ACTOR)
    return AdminAccount.from_uri(admin.email, ADMIN_PASSWORD, uri)


@pytest.fixture
def admin_client(client: TestClient, admin_account: AdminAccount) -> TestClient:
    """The test client, signed in as ``admin_account``."""
    admin_account.sign_in(client)
    return client
