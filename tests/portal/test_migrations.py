"""The migrations build the schema the models describe, and undo it."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import delete, inspect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal.db import (
    MIGRATIONS_DIR,
    alembic_config,
    current_revision,
    downgrade_database,
    upgrade_database,
)
from portal.db_base import utc_now
from portal.db_models import metadata
from portal.feedback.models import Feedback
from portal.licenses.models import License
from portal.organisations.models import Organisation

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


def test_the_feedback_key_migration_keeps_rows_and_refuses_another_organisation(
    engine: Engine,
) -> None:
    """0006 replaces feedback's two foreign keys by one on (license, organisation); on
    SQLite by copying the table, so its rows must come through both ways."""
    organisation, other = Organisation(name="Key Org A"), Organisation(name="Key Org B")
    now = utc_now()
    license_ = License(
        organisation=organisation,
        channels=["stable"],
        max_engines=1,
        not_before=now,
        expires_at=now + timedelta(days=1),
        key_id="k",
    )
    feedback_id = uuid.uuid4()
    with Session(engine) as session:
        session.add_all([license_, other])
        session.flush()
        session.add(_feedback(feedback_id, license_.id, organisation.id))
        session.commit()
        license_id, organisation_id, other_id = license_.id, organisation.id, other.id
    try:
        downgrade_database(engine, "0005")
        upgrade_database(engine)
        with Session(engine) as session:
            assert session.get(Feedback, feedback_id) is not None
            session.add(_feedback(uuid.uuid4(), license_id, other_id))
            with pytest.raises(IntegrityError):
                session.commit()
    finally:
        with engine.begin() as connection:
            connection.execute(delete(Feedback).where(Feedback.feedback_id == feedback_id))
            connection.execute(delete(License).where(License.id == license_id))
            connection.execute(
                delete(Organisation).where(Organisation.id.in_([organisation_id, other_id]))
            )


def _feedback(
    feedback_id: uuid.UUID, license_id: uuid.UUID, organisation_id: uuid.UUID
) -> Feedback:
    now = utc_now()
    return Feedback(
        feedback_id=feedback_id,
        license_id=license_id,
        organisation_id=organisation_id,
        engine_id=uuid.uuid4(),
        batch_id=uuid.uuid4(),
        bundle="reference-2026.11.0",
        score=0.9,
        threshold=0.5,
        characteristics={},
        verdict="grooming",
        reviewed_at=now,
        vector_version=1,
        vector_dim=4,
        vector_nnz=0,
        vector=b"",
        shared_text=None,
    )
