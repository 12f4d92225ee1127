"""Engine activations: the seats of a license and the leases that prove them.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 22:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime(timezone=True)
ACTIVE_ONLY = sa.text("deactivated_at IS NULL")


def upgrade() -> None:
    op.create_table(
        "activations",
        sa.Column(
            "id", sa.Uuid(), nullable=False, comment="The 'jti' claim of the engine's leases."
        ),
        sa.Column("license_id", sa.Uuid(), nullable=False),
        sa.Column(
            "engine_id",
            sa.Uuid(),
            nullable=False,
            comment="Chosen by the engine (kept in its home); the 'sub' claim of its leases.",
        ),
        sa.Column(
            "hostname",
            sa.String(length=255),
            nullable=True,
            comment="As the engine reported it; for administrators only.",
        ),
        sa.Column("engine_version", sa.String(length=64), nullable=False),
        sa.Column("activated_at", UTC_DATETIME, nullable=False),
        sa.Column(
            "last_seen_at",
            UTC_DATETIME,
            nullable=False,
            comment="Last activation or lease renewal.",
        ),
        sa.Column(
            "lease_expires_at",
            UTC_DATETIME,
            nullable=False,
            comment="The 'exp' of its latest lease.",
        ),
        sa.Column(
            "deactivated_at",
            UTC_DATETIME,
            nullable=True,
            comment="When the seat was freed; null while the engine holds it.",
        ),
        sa.Column(
            "deactivated_by",
            sa.String(length=255),
            nullable=True,
            comment="An administrator's e-mail, or 'portal:lease-lapsed' for a reclaimed seat.",
        ),
        sa.ForeignKeyConstraint(
            ["license_id"],
            ["licenses.id"],
            name=op.f("fk_activations_license_id_licenses"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_activations")),
        comment="Engines holding (or having held) a seat of a license.",
    )
    op.create_index(op.f("ix_activations_license_id"), "activations", ["license_id"])
    op.create_index(
        "uq_activations_active_engine",
        "activations",
        ["license_id", "engine_id"],
        unique=True,
        postgresql_where=ACTIVE_ONLY,
        sqlite_where=ACTIVE_ONLY,
    )


def downgrade() -> None:
    op.drop_index("uq_activations_active_engine", table_name="activations")
    op.drop_index(op.f("ix_activations_license_id"), table_name="activations")
    op.drop_table("activations")
