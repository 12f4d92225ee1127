"""Usage and feedback from engines, the organisations' text sharing switch, and
the organisations' dashboard links (a new magic link purpose).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 12:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime(timezone=True)
JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
# ``magic_links.purpose`` is a non-native enum: a CHECK constraint lists its values.
LINK_PURPOSES_BEFORE = ("application_status", "license_download", "admin_invitation")
LINK_PURPOSES = (*LINK_PURPOSES_BEFORE, "organisation_dashboard")
LINK_PURPOSE_CHECK = "ck_magic_links_link_purpose"


def _allow_link_purposes(values: Sequence[str]) -> None:
    with op.batch_alter_table("magic_links") as batch:
        batch.drop_constraint(op.f(LINK_PURPOSE_CHECK), type_="check")
        batch.create_check_constraint(op.f(LINK_PURPOSE_CHECK), sa.column("purpose").in_(values))


def upgrade() -> None:
    with op.batch_alter_table("organisations") as batch:
        batch.add_column(
            sa.Column(
                "text_sharing_enabled",
                sa.Boolean(),
                server_default=sa.false(),
                nullable=False,
                comment="Whether its engines may send message text with feedback (off by default).",
            )
        )
    op.create_table(
        "report_batches",
        sa.Column(
            "batch_id",
            sa.Uuid(),
            nullable=False,
            comment="Chosen by the engine; the idempotency key of the batch.",
        ),
        sa.Column("kind", sa.String(length=16), nullable=False, comment="'usage' or 'feedback'."),
        sa.Column("license_id", sa.Uuid(), nullable=False),
        sa.Column("engine_id", sa.Uuid(), nullable=False),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.Column("received_at", UTC_DATETIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["license_id"],
            ["licenses.id"],
            name=op.f("fk_report_batches_license_id_licenses"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("batch_id", name=op.f("pk_report_batches")),
        comment="Batches of usage or feedback accepted from engines.",
    )
    op.create_index(
        op.f("ix_report_batches_license_id"), "report_batches", ["license_id"], unique=False
    )
    op.create_table(
        "usage_days",
        sa.Column("license_id", sa.Uuid(), nullable=False),
        sa.Column("engine_id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("bundle", sa.String(length=128), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("scored", sa.Integer(), nullable=False),
        sa.Column("flagged", sa.Integer(), nullable=False),
        sa.Column("reviewed", sa.Integer(), nullable=False),
        sa.Column("not_grooming", sa.Integer(), nullable=False),
        sa.Column("grooming", sa.Integer(), nullable=False),
        sa.Column("imminent_threat", sa.Integer(), nullable=False),
        sa.Column(
            "bin_00",
            sa.Integer(),
            nullable=False,
            comment="bin_00 to bin_19: counts of scores in 20 equal bins over [0, 1] "
            "(bin_NN: [NN/20, (NN+1)/20), bin_19 includes 1).",
        ),
        *(sa.Column(f"bin_{index:02d}", sa.Integer(), nullable=False) for index in range(1, 20)),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["license_id"],
            ["licenses.id"],
            name=op.f("fk_usage_days_license_id_licenses"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_usage_days_organisation_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint(
            "license_id", "engine_id", "day", "bundle", name=op.f("pk_usage_days")
        ),
        comment="Usage per engine, UTC day and bundle; sums of increments.",
    )
    op.create_index(
        "ix_usage_days_organisation_day", "usage_days", ["organisation_id", "day"], unique=False
    )
    op.create_index(
        "ix_usage_days_engine_counts",
        "usage_days",
        ["license_id", "engine_id", "day", "scored", "flagged", "reviewed"],
        unique=False,
    )
    op.create_table(
        "usage_rollups",
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("bundle", sa.String(length=128), nullable=False),
        sa.Column("scored", sa.BigInteger(), nullable=False),
        sa.Column("flagged", sa.BigInteger(), nullable=False),
        sa.Column("reviewed", sa.BigInteger(), nullable=False),
        sa.Column("not_grooming", sa.BigInteger(), nullable=False),
        sa.Column("grooming", sa.BigInteger(), nullable=False),
        sa.Column("imminent_threat", sa.BigInteger(), nullable=False),
        sa.Column(
            "bin_00",
            sa.BigInteger(),
            nullable=False,
            comment="bin_00 to bin_19: as in usage_days, summed.",
        ),
        *(sa.Column(f"bin_{index:02d}", sa.BigInteger(), nullable=False) for index in range(1, 20)),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_usage_rollups_organisation_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("organisation_id", "day", "bundle", name=op.f("pk_usage_rollups")),
        comment="Usage per organisation, UTC day and bundle: sums of its usage_days rows.",
    )
    op.create_table(
        "feedback",
        sa.Column(
            "feedback_id", sa.Uuid(), nullable=False, comment="The engine's random review item id."
        ),
        sa.Column("license_id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("engine_id", sa.Uuid(), nullable=False),
        sa.Column(
            "batch_id", sa.Uuid(), nullable=False, comment="The batch that last set this row."
        ),
        sa.Column("bundle", sa.String(length=128), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("characteristics", JSON_DOCUMENT, nullable=False),
        sa.Column("verdict", sa.String(length=32), nullable=False),
        sa.Column("reviewed_at", UTC_DATETIME, nullable=False),
        sa.Column("vector_version", sa.Integer(), nullable=False),
        sa.Column("vector_dim", sa.Integer(), nullable=False),
        sa.Column("vector_nnz", sa.Integer(), nullable=False),
        sa.Column(
            "vector",
            sa.LargeBinary(),
            nullable=False,
            comment="zlib of little-endian int32 indices then float32 values.",
        ),
        sa.Column(
            "shared_text",
            JSON_DOCUMENT,
            nullable=True,
            comment="Only when the organisation enabled sharing and the moderator confirmed.",
        ),
        sa.Column("received_at", UTC_DATETIME, nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["license_id"],
            ["licenses.id"],
            name=op.f("fk_feedback_license_id_licenses"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_feedback_organisation_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("feedback_id", name=op.f("pk_feedback")),
        comment="Moderators' verdicts on flagged conversations, with hashed features.",
    )
    op.create_index(op.f("ix_feedback_license_id"), "feedback", ["license_id"], unique=False)
    op.create_index(
        "ix_feedback_organisation_bundle", "feedback", ["organisation_id", "bundle"], unique=False
    )
    _allow_link_purposes(LINK_PURPOSES)


def downgrade() -> None:
    op.execute(
        sa.text("DELETE FROM magic_links WHERE purpose = :purpose").bindparams(
            purpose="organisation_dashboard"
        )
    )
    _allow_link_purposes(LINK_PURPOSES_BEFORE)
    op.drop_index("ix_feedback_organisation_bundle", table_name="feedback")
    op.drop_index(op.f("ix_feedback_license_id"), table_name="feedback")
    op.drop_table("feedback")
    op.drop_table("usage_rollups")
    op.drop_index("ix_usage_days_engine_counts", table_name="usage_days")
    op.drop_index("ix_usage_days_organisation_day", table_name="usage_days")
    op.drop_table("usage_days")
    op.drop_index(op.f("ix_report_batches_license_id"), table_name="report_batches")
    op.drop_table("report_batches")
    with op.batch_alter_table("organisations") as batch:
        batch.drop_column("text_sharing_enabled")
