"""The ``report_batches`` and ``usage_days`` tables.

- Every batch an engine sends (usage or feedback) is accepted once: its
  ``batch_id`` (chosen by the engine, kept with the batch until accepted) is the
  primary key of ``report_batches``, so a batch sent again is recognised and
  counts nothing twice (see ``docs/feedback.md``).
- Usage counts are increments: each accepted record is added to the row of its
  (license, engine, day, bundle). No text and no user ids are ever stored.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from portal.db_base import Base, JSONDocument, utc_now


class ReportBatch(Base):
    __tablename__ = "report_batches"
    __table_args__ = ({"comment": "Batches of usage or feedback accepted from engines."},)

    batch_id: Mapped[uuid.UUID] = mapped_column(
        primary_key=True, comment="Chosen by the engine; the idempotency key of the batch."
    )
    kind: Mapped[str] = mapped_column(String(16), comment="'usage' or 'feedback'.")
    license_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("licenses.id", ondelete="RESTRICT"), index=True
    )
    engine_id: Mapped[uuid.UUID]
    records: Mapped[int] = mapped_column(Integer)
    received_at: Mapped[datetime] = mapped_column(default=utc_now)


class UsageDay(Base):
    __tablename__ = "usage_days"
    __table_args__ = ({"comment": "Usage per engine, UTC day and bundle; sums of increments."},)

    license_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("licenses.id", ondelete="RESTRICT"), primary_key=True
    )
    engine_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    bundle: Mapped[str] = mapped_column(String(128), primary_key=True)
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="RESTRICT"), index=True
    )
    scored: Mapped[int] = mapped_column(Integer, default=0)
    flagged: Mapped[int] = mapped_column(Integer, default=0)
    reviewed: Mapped[int] = mapped_column(Integer, default=0)
    not_grooming: Mapped[int] = mapped_column(Integer, default=0)
    grooming: Mapped[int] = mapped_column(Integer, default=0)
    imminent_threat: Mapped[int] = mapped_column(Integer, default=0)
    score_histogram: Mapped[list[int]] = mapped_column(
        JSONDocument, comment="20 counts of scores in equal bins over [0, 1]."
    )
    updated_at: Mapped[datetime] = mapped_column(default=utc_now)
