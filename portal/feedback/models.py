"""The ``feedback`` table: one row per reviewed conversation an engine reported.

- ``feedback_id`` is the engine's random review item id, never a conversation
  or user id; the same id sent again from the same license replaces the
  verdict (a moderator corrected it).
- ``vector`` is the model's hashed feature vector (``FeatureVector.to_bytes``):
  non-reversible, enough to retrain on.
- ``shared_text`` is null unless the organisation enabled text sharing and the
  moderator confirmed sharing for that conversation.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Float, ForeignKeyConstraint, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from portal.db_base import Base, JSONDocument, utc_now

# PostgreSQL's maximum: only a row with a long shared text is compressed or moved out.
FEEDBACK_TOAST_TUPLE_TARGET: Final = 8160


class Feedback(Base):
    __tablename__ = "feedback"
    __table_args__ = (
        # One constraint for both: the organisation is the license's (and a bulk insert
        # checks one key per row rather than two: see migration 0006).
        ForeignKeyConstraint(
            ["license_id", "organisation_id"],
            ["licenses.id", "licenses.organisation_id"],
            ondelete="RESTRICT",
        ),
        Index("ix_feedback_organisation_bundle", "organisation_id", "bundle"),
        {
            "comment": "Moderators' verdicts on flagged conversations, with hashed features.",
            # A row (about 2 KB) stays in the table's pages: see migration 0005.
            "postgresql_with": {"toast_tuple_target": FEEDBACK_TOAST_TUPLE_TARGET},
        },
    )

    feedback_id: Mapped[uuid.UUID] = mapped_column(
        primary_key=True, comment="The engine's random review item id."
    )
    license_id: Mapped[uuid.UUID]
    organisation_id: Mapped[uuid.UUID]
    engine_id: Mapped[uuid.UUID]
    batch_id: Mapped[uuid.UUID] = mapped_column(comment="The batch that last set this row.")
    bundle: Mapped[str] = mapped_column(String(128))
    score: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    characteristics: Mapped[dict[str, float]] = mapped_column(JSONDocument)
    verdict: Mapped[str] = mapped_column(String(32))
    reviewed_at: Mapped[datetime]
    vector_version: Mapped[int] = mapped_column(Integer)
    vector_dim: Mapped[int] = mapped_column(Integer)
    vector_nnz: Mapped[int] = mapped_column(Integer)
    vector: Mapped[bytes] = mapped_column(
        LargeBinary, comment="zlib of little-endian int32 indices then float32 values."
    )
    shared_text: Mapped[dict[str, Any] | None] = mapped_column(
        JSONDocument,
        comment="Only when the organisation enabled sharing and the moderator confirmed.",
    )
    received_at: Mapped[datetime] = mapped_column(default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now)
