"""The web portal: administrators and their sessions, magic links, applications
with their vetting checklist, private notes and information requests.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 19:30:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime(timezone=True)
BIG_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _enum(*values: str, name: str, length: int) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=length)


def upgrade() -> None:
    op.create_table(
        "admins",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False, comment="Stored lower-case."),
        sa.Column(
            "password_hash",
            sa.String(length=255),
            nullable=True,
            comment="argon2id hash; empty until an invitation is accepted.",
        ),
        sa.Column(
            "totp_secret",
            sa.String(length=64),
            nullable=False,
            comment="Base32 TOTP shared secret.",
        ),
        sa.Column(
            "totp_last_step",
            sa.BigInteger(),
            nullable=True,
            comment="Time step of the last accepted TOTP code: a code is used once.",
        ),
        sa.Column(
            "enrolled_at",
            UTC_DATETIME,
            nullable=True,
            comment="When the password and TOTP were set; null for a pending invitation.",
        ),
        sa.Column("invited_by_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column(
            "failed_login_count",
            sa.Integer(),
            nullable=False,
            comment="Failed logins in the current window (see login_failure_window).",
        ),
        sa.Column("last_failed_login_at", UTC_DATETIME, nullable=True),
        sa.Column(
            "locked_until",
            UTC_DATETIME,
            nullable=True,
            comment="Logins are refused until then, whatever the credentials.",
        ),
        sa.Column("last_login_at", UTC_DATETIME, nullable=True),
        sa.ForeignKeyConstraint(
            ["invited_by_id"],
            ["admins.id"],
            name=op.f("fk_admins_invited_by_id_admins"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admins")),
        sa.UniqueConstraint("email", name=op.f("uq_admins_email")),
    )

    op.create_table(
        "admin_sessions",
        sa.Column(
            "id",
            sa.String(length=64),
            nullable=False,
            comment="Hex SHA-256 of the session cookie's token.",
        ),
        sa.Column("admin_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("expires_at", UTC_DATETIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["admin_id"],
            ["admins.id"],
            name=op.f("fk_admin_sessions_admin_id_admins"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admin_sessions")),
    )
    op.create_index(op.f("ix_admin_sessions_admin_id"), "admin_sessions", ["admin_id"])
    op.create_index(op.f("ix_admin_sessions_expires_at"), "admin_sessions", ["expires_at"])

    op.create_table(
        "magic_links",
        sa.Column(
            "id",
            sa.String(length=32),
            nullable=False,
            comment="The token's public selector part.",
        ),
        sa.Column(
            "verifier_sha256",
            sa.String(length=64),
            nullable=False,
            comment="Hex SHA-256 of the token's secret part.",
        ),
        sa.Column(
            "purpose",
            _enum(
                "application_status",
                "license_download",
                "admin_invitation",
                name="link_purpose",
                length=32,
            ),
            nullable=False,
        ),
        sa.Column(
            "subject_id",
            sa.String(length=64),
            nullable=False,
            comment="What the link opens: an application, license or admin id.",
        ),
        sa.Column("one_time", sa.Boolean(), nullable=False, comment="Consumed by its first use."),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("expires_at", UTC_DATETIME, nullable=False),
        sa.Column(
            "used_at",
            UTC_DATETIME,
            nullable=True,
            comment="When a one-time link was used, or when it was withdrawn.",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_magic_links")),
        comment="E-mailed links; only a hash of each token's secret part is kept.",
    )
    op.create_index("ix_magic_links_subject", "magic_links", ["purpose", "subject_id"])

    op.create_table(
        "applications",
        sa.Column(
            "id",
            BIG_KEY,
            autoincrement=True,
            nullable=False,
            comment="Shown to people as A-000123 (label), the subject id of its events.",
        ),
        sa.Column("organization_name", sa.String(length=200), nullable=False),
        sa.Column("website", sa.String(length=500), nullable=False),
        sa.Column("country", sa.String(length=100), nullable=False),
        sa.Column("contact_name", sa.String(length=200), nullable=False),
        sa.Column("contact_email", sa.String(length=254), nullable=False),
        sa.Column("platform_description", sa.Text(), nullable=False),
        sa.Column("offers_chat", sa.Boolean(), nullable=False),
        sa.Column(
            "user_age_range",
            _enum("under_13", "13_17", "mixed", "18_plus", name="user_age_range", length=16),
            nullable=False,
        ),
        sa.Column("monthly_active_users", sa.BigInteger(), nullable=False),
        sa.Column("moderation_team_size", sa.Integer(), nullable=False),
        sa.Column("escalation_contact", sa.Text(), nullable=False),
        sa.Column(
            "ncmec_esp_id",
            sa.String(length=64),
            nullable=True,
            comment="NCMEC Electronic Service Provider id, if the applicant has one.",
        ),
        sa.Column(
            "terms_accepted_at",
            UTC_DATETIME,
            nullable=False,
            comment="When the applicant ticked agree_terms.",
        ),
        sa.Column(
            "status",
            _enum(
                "submitted",
                "information_requested",
                "deferred",
                "approved",
                "declined",
                name="application_status",
                length=32,
            ),
            nullable=False,
        ),
        sa.Column(
            "submitted_at",
            UTC_DATETIME,
            nullable=False,
            comment="First submission; the queue's age.",
        ),
        sa.Column("status_changed_at", UTC_DATETIME, nullable=False),
        sa.Column("decided_at", UTC_DATETIME, nullable=True),
        sa.Column("decided_by", sa.String(length=254), nullable=True),
        sa.Column(
            "decision_reason",
            sa.Text(),
            nullable=True,
            comment="Why it was declined (the applicant is told) or deferred (internal).",
        ),
        sa.Column("organisation_id", sa.Uuid(), nullable=True, comment="Set on approval."),
        sa.Column("license_id", sa.Uuid(), nullable=True, comment="Set on approval."),
        sa.ForeignKeyConstraint(
            ["license_id"],
            ["licenses.id"],
            name=op.f("fk_applications_license_id_licenses"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_applications_organisation_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_applications")),
        comment="Requests for access, as the applicant submitted them, and their vetting.",
    )
    op.create_index(op.f("ix_applications_contact_email"), "applications", ["contact_email"])
    # The queue: one status, oldest first; and every status by age.
    op.create_index("ix_applications_queue", "applications", ["status", "submitted_at", "id"])
    op.create_index("ix_applications_submitted", "applications", ["submitted_at", "id"])

    op.create_table(
        "application_checklist",
        sa.Column("id", BIG_KEY, autoincrement=True, nullable=False),
        sa.Column("application_id", BIG_KEY, nullable=False),
        sa.Column(
            "item",
            _enum(
                "offers_chat_to_minors",
                "organisation_verified",
                "moderation_capacity",
                "escalation_contact",
                "terms_accepted",
                name="checklist_item",
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("checked", sa.Boolean(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("admin_id", sa.Uuid(), nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["admin_id"],
            ["admins.id"],
            name=op.f("fk_application_checklist_admin_id_admins"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["applications.id"],
            name=op.f("fk_application_checklist_application_id_applications"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_application_checklist")),
        sa.UniqueConstraint(
            "application_id", "item", name=op.f("uq_application_checklist_application_id_item")
        ),
        comment="One vetting checklist item of an application, as last set.",
    )

    op.create_table(
        "application_notes",
        sa.Column("id", BIG_KEY, autoincrement=True, nullable=False),
        sa.Column("application_id", BIG_KEY, nullable=False),
        sa.Column("admin_id", sa.Uuid(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["admin_id"],
            ["admins.id"],
            name=op.f("fk_application_notes_admin_id_admins"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["applications.id"],
            name=op.f("fk_application_notes_application_id_applications"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_application_notes")),
        comment="Administrators' private notes; never shown to applicants.",
    )
    op.create_index(
        op.f("ix_application_notes_application_id"), "application_notes", ["application_id"]
    )

    op.create_table(
        "information_requests",
        sa.Column("id", BIG_KEY, autoincrement=True, nullable=False),
        sa.Column("application_id", BIG_KEY, nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("asked_by_id", sa.Uuid(), nullable=False),
        sa.Column("asked_at", UTC_DATETIME, nullable=False),
        sa.Column("reply", sa.Text(), nullable=True),
        sa.Column("replied_at", UTC_DATETIME, nullable=True),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["applications.id"],
            name=op.f("fk_information_requests_application_id_applications"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["asked_by_id"],
            ["admins.id"],
            name=op.f("fk_information_requests_asked_by_id_admins"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_information_requests")),
        comment="Questions to the applicant and their replies.",
    )
    op.create_index(
        op.f("ix_information_requests_application_id"),
        "information_requests",
        ["application_id"],
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_information_requests_application_id"), table_name="information_requests")
    op.drop_table("information_requests")

    op.drop_index(op.f("ix_application_notes_application_id"), table_name="application_notes")
    op.drop_table("application_notes")

    op.drop_table("application_checklist")

    op.drop_index("ix_applications_submitted", table_name="applications")
    op.drop_index("ix_applications_queue", table_name="applications")
    op.drop_index(op.f("ix_applications_contact_email"), table_name="applications")
    op.drop_table("applications")

    op.drop_index("ix_magic_links_subject", table_name="magic_links")
    op.drop_table("magic_links")

    op.drop_index(op.f("ix_admin_sessions_expires_at"), table_name="admin_sessions")
    op.drop_index(op.f("ix_admin_sessions_admin_id"), table_name="admin_sessions")
    op.drop_table("admin_sessions")

    op.drop_table("admins")
