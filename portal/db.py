"""Database engine, sessions and migrations.

- ``session_scope()`` is the one place a unit of work commits: on success it
  commits, on any error it rolls back. Services only ``flush()``; CLI commands
  (and, later, the web request dependency) own the transaction.
- SQLite connections run with foreign keys on, and SQLAlchemy emits ``BEGIN``
  itself instead of the ``sqlite3`` driver's legacy transaction control, so
  SAVEPOINTs and DDL are transactional there as on PostgreSQL (the SQLAlchemy
  SQLite dialect documentation, "Enabling Non-Legacy SQLite Transactional Modes").
- ``upgrade_database()`` runs ``alembic upgrade head`` programmatically.
  ``migrations/`` is a top-level folder of the repository, not a package, so it
  is located as ``MIGRATIONS_DIR``: the parent of the ``portal`` package's
  parent. The portal therefore runs migrations from a source checkout or an
  editable install (``pip install -e``), from any working directory.
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, event, make_url
from sqlalchemy.orm import Session, sessionmaker

from portal.errors import ConfigurationError
from portal.settings import get_settings

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sqlalchemy.engine import Connection, Engine

# portal/db.py -> portal/ -> the repository, which holds migrations/.
MIGRATIONS_DIR: Final = Path(__file__).resolve().parent.parent / "migrations"


def _use_sqlalchemy_transactions_on_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Stop the driver from emitting BEGIN (and COMMIT before DDL) itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN")


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url``, with the SQLite transaction fixes when it is SQLite."""
    engine = create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        database = engine.url.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        _use_sqlalchemy_transactions_on_sqlite(engine)
    return engine


@functools.lru_cache(maxsize=1)
def get_engine() -> Engine:
    return make_engine(get_settings().database_url, pool_pre_ping=True)


@functools.lru_cache(maxsize=1)
def get_sessionmaker() -> sessionmaker[Session]:
    # Objects stay readable after commit, for the CLI to print them.
    return sessionmaker(bind=get_engine(), expire_on_commit=False)


@contextlib.contextmanager
def session_scope() -> Iterator[Session]:
    """A session whose work is committed on success and rolled back on error."""
    session = get_sessionmaker()()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic configuration for ``migrations/`` that needs no ``alembic.ini``.

    With ``connection`` the migrations run on it (inside its transaction);
    without, ``migrations/env.py`` connects to the settings' database.
    """
    if not (MIGRATIONS_DIR / "env.py").is_file():
        raise ConfigurationError(
            f"migrations not found at {MIGRATIONS_DIR}: run the portal from a source "
            "checkout or an editable install"
        )
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade_database(engine: Engine | None = None, revision: str = "head") -> None:
    """``alembic upgrade`` the database of ``engine`` (default: the settings')."""
    with (engine or get_engine()).begin() as connection:
        command.upgrade(alembic_config(connection), revision)


def downgrade_database(engine: Engine | None = None, revision: str = "base") -> None:
    with (engine or get_engine()).begin() as connection:
        command.downgrade(alembic_config(connection), revision)


def current_revision(engine: Engine | None = None) -> str | None:
    """The database's Alembic revision (None before the first upgrade)."""
    with (engine or get_engine()).connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def display_url(url: str) -> str:
    """``url`` with its password masked, for output."""
    return make_url(url).render_as_string(hide_password=True)
