"""Alembic environment of the Vigil portal.

The database is, in order: the connection passed in ``config.attributes``
(``portal.db.upgrade_database`` and the tests), a ``sqlalchemy.url`` set on the
config, or the portal settings' ``VIGIL_DATABASE_URL``. SQLite gets batch
mode (``render_as_batch``), because it can alter little in place.
"""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy.engine import Connection

from portal.db import make_engine
from portal.db_models import metadata
from portal.settings import get_settings

config = context.config

if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        # portal.db.make_engine makes SQLite DDL transactional, as it is on PostgreSQL.
        transactional_ddl=True,
        compare_type=True,
        compare_server_default=True,
    )


def _database_url() -> str:
    return config.get_main_option("sqlalchemy.url") or get_settings().database_url


def run_migrations_offline() -> None:
    context.configure(
        url=_database_url(),
        target_metadata=metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_as_batch=_database_url().startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if isinstance(connection, Connection):
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(_database_url())  # with the SQLite transaction fixes
    try:
        with engine.connect() as new_connection:
            _configure(new_connection)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
