"""The migrations build the schema the models describe, and undo it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from portal.db import (
    MIGRATIONS_DIR,
    alembic_config,
    current_revision,
    downgrade_database,
    upgrade_database,
)
from portal.db_models import metadata

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

PORTAL_TABLES = {
    "organisations",
    "licenses",
    "bundles",
    "events",
    "admins",
    "admin_sessions",
    "magic_links",
    "applications",
    "application_checklist",
    "application_notes",
    "information_requests",
    "activations",
    "report_batches",
    "usage_days",
    "feedback",
}


def test_models_and_migrations_agree(connection: Connection) -> None:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "compare_server_default": True}
    )
    assert compare_metadata(context, metadata) == []


def test_database_is_at_the_single_head(engine: Engine) -> None:
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    assert len(heads) == 1
    assert current_revision(engine) == heads[0]


def test_revision_files_are_date_prefixed() -> None:
    names = [path.name for path in (MIGRATIONS_DIR / "versions").glob("*.py")]
    assert names
    for name in names:
        year, month, day, *_ = name.split("_")
        assert (len(year), len(month), len(day)) == (4, 2, 2), name


def test_downgrade_removes_every_table_and_upgrade_restores_them(engine: Engine) -> None:
    downgrade_database(engine, "base")
    try:
        assert PORTAL_TABLES.isdisjoint(inspect(engine).get_table_names())
        assert current_revision(engine) is None
    finally:
        upgrade_database(engine)
    assert set(inspect(engine).get_table_names()) >= PORTAL_TABLES
