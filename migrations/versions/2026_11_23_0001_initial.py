"""The initial schema: organisations, licenses, bundles and the audit trail.

Revision ID: 0001
Revises:
Create Date: 2026-11-23 18:04:20+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
UTC_DATETIME = sa.DateTime(timezone=True)

# Audit events are append-only in the database too, whoever connects. A batch
# migration that recreates "events" on SQLite must create these triggers again.
_POSTGRESQL_APPEND_ONLY = (
    """
    CREATE FUNCTION events_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'audit events are append-only (% refused)', TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END;
    $$
    """,
    """
    CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_refuse_change()
    """,
    """
    CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_refuse_change()
    """,
)
_SQLITE_APPEND_ONLY = (
    """
    CREATE TRIGGER events_no_update BEFORE UPDATE ON events
    BEGIN SELECT RAISE(ABORT, 'audit events are append-only (UPDATE refused)'); END
    """,
    """
    CREATE TRIGGER events_no_delete BEFORE DELETE ON events
    BEGIN SELECT RAISE(ABORT, 'audit events are append-only (DELETE refused)'); END
    """,
)


def _enum(*values: str, name: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=16)


def upgrade() -> None:
    op.create_table(
        "organisations",
        sa.Column("id", sa.Uuid(), nullable=False, comment="The 'sub' claim of its licenses."),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organisations")),
        sa.UniqueConstraint("name", name=op.f("uq_organisations_name")),
    )

    op.create_table(
        "licenses",
        sa.Column(
            "id", sa.Uuid(), nullable=False, comment="The 'jti' claim of the license's tokens."
        ),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column(
            "channels",
            JSON_DOCUMENT,
            nullable=False,
            comment='Update channels the license may pull, e.g. ["stable"].',
        ),
        sa.Column(
            "max_engines",
            sa.Integer(),
            nullable=False,
            comment="How many engines may run on it at once.",
        ),
        sa.Column(
            "features",
            JSON_DOCUMENT,
            nullable=False,
            comment="Optional engine features the license enables.",
        ),
        sa.Column("issued_at", UTC_DATETIME, nullable=False, comment="The 'iat' claim."),
        sa.Column("not_before", UTC_DATETIME, nullable=False, comment="The 'nbf' claim."),
        sa.Column(
            "expires_at",
            UTC_DATETIME,
            nullable=False,
            comment="The 'exp' claim; engines add the grace period.",
        ),
        sa.Column(
            "status", _enum("active", "suspended", "revoked", name="license_status"), nullable=False
        ),
        sa.Column("status_changed_at", UTC_DATETIME, nullable=False),
        sa.Column("revoked_at", UTC_DATETIME, nullable=True),
        sa.Column(
            "revocation_reason",
            sa.Text(),
            nullable=True,
            comment="Why it was revoked; also published on the signed revocation list.",
        ),
        sa.Column(
            "key_id",
            sa.String(length=64),
            nullable=False,
            comment="kid of the license key that signed its latest token.",
        ),
        sa.CheckConstraint("expires_at > not_before", name=op.f("ck_licenses_expires_after_start")),
        sa.CheckConstraint("max_engines >= 1", name=op.f("ck_licenses_max_engines_positive")),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_licenses_organisation_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_licenses")),
    )
    op.create_index(op.f("ix_licenses_expires_at"), "licenses", ["expires_at"])
    op.create_index(op.f("ix_licenses_organisation_id"), "licenses", ["organisation_id"])
    op.create_index(op.f("ix_licenses_status"), "licenses", ["status"])

    op.create_table(
        "bundles",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column(
            "version",
            sa.String(length=64),
            nullable=False,
            comment="Dotted numbers; names the bundle in export commands.",
        ),
        sa.Column("channel", _enum("stable", "beta", name="bundle_channel"), nullable=False),
        sa.Column(
            "target_path",
            sa.String(length=255),
            nullable=False,
            comment="TUF target path, e.g. bundles/stable/NAME-VERSION.tar.",
        ),
        sa.Column(
            "sha256",
            sa.String(length=64),
            nullable=False,
            comment="Hex SHA-256 of the bundle file.",
        ),
        sa.Column(
            "length", sa.BigInteger(), nullable=False, comment="Size of the bundle file in bytes."
        ),
        sa.Column(
            "created",
            UTC_DATETIME,
            nullable=False,
            comment="When the model was trained (manifest).",
        ),
        sa.Column("published_at", UTC_DATETIME, nullable=False),
        sa.Column("published_by", sa.String(length=255), nullable=False),
        sa.Column(
            "manifest",
            JSON_DOCUMENT,
            nullable=False,
            comment="The bundle's manifest.json, for display (metrics, threshold).",
        ),
        sa.CheckConstraint("length > 0", name=op.f("ck_bundles_length_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bundles")),
        sa.UniqueConstraint("target_path", name=op.f("uq_bundles_target_path")),
        sa.UniqueConstraint("version", name=op.f("uq_bundles_version")),
    )
    op.create_index(op.f("ix_bundles_channel"), "bundles", ["channel"])

    op.create_table(
        "events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column(
            "actor",
            sa.String(length=255),
            nullable=False,
            comment="Who acted: 'cli:<os user>' for the command line, an admin's email on the web.",
        ),
        sa.Column(
            "tag",
            sa.String(length=64),
            nullable=False,
            comment="What happened, shaped subject:action (events/tags.py).",
        ),
        sa.Column(
            "subject_id",
            sa.String(length=64),
            nullable=True,
            comment="Id of the object acted on (license id, bundle version...), for its history.",
        ),
        sa.Column(
            "payload",
            JSON_DOCUMENT,
            nullable=False,
            comment="Small JSON details; never secrets or tokens.",
        ),
        sa.CheckConstraint("tag LIKE '%_:_%'", name=op.f("ck_events_tag_is_subject_action")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
        comment="Append-only audit trail of administrative and licensing actions.",
    )
    op.create_index(op.f("ix_events_created_at"), "events", ["created_at"])
    op.create_index("ix_events_subject", "events", ["subject_id", "created_at"])
    op.create_index(op.f("ix_events_tag"), "events", ["tag"])

    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        for statement in _POSTGRESQL_APPEND_ONLY:
            op.execute(statement)
    elif dialect == "sqlite":
        for statement in _SQLITE_APPEND_ONLY:
            op.execute(statement)


def downgrade() -> None:
    # Dropping a table drops its triggers; neither database fires them for it.
    op.drop_index(op.f("ix_events_tag"), table_name="events")
    op.drop_index("ix_events_subject", table_name="events")
    op.drop_index(op.f("ix_events_created_at"), table_name="events")
    op.drop_table("events")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION events_refuse_change()")

    op.drop_index(op.f("ix_bundles_channel"), table_name="bundles")
    op.drop_table("bundles")

    op.drop_index(op.f("ix_licenses_status"), table_name="licenses")
    op.drop_index(op.f("ix_licenses_organisation_id"), table_name="licenses")
    op.drop_index(op.f("ix_licenses_expires_at"), table_name="licenses")
    op.drop_table("licenses")

    op.drop_table("organisations")
