"""Feedback rows stay in their table's pages: no TOAST for a row of a few kilobytes, and
no index on ``license_id`` (no query looks rows up by it; the ownership check goes by
``feedback_id``).

A feedback row is about 2 KB, most of it the zlib-compressed feature vector: just over
PostgreSQL's default ``toast_tuple_target`` (about 2 KB), so every other row was
compressed again (in vain) and moved to the TOAST table, at a third of the database's
time spent ingesting feedback. With the target at its maximum, only a row with a long
shared text is toasted.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 19:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FEEDBACK_TOAST_TUPLE_TARGET = 8160  # PostgreSQL's maximum


def upgrade() -> None:
    op.drop_index(op.f("ix_feedback_license_id"), table_name="feedback")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE feedback SET (toast_tuple_target = {FEEDBACK_TOAST_TUPLE_TARGET})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE feedback RESET (toast_tuple_target)")
    op.create_index(op.f("ix_feedback_license_id"), "feedback", ["license_id"], unique=False)
