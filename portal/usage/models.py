"""The ``report_batches``, ``usage_days`` and ``usage_rollups`` tables.

- Every batch an engine sends (usage or feedback) is accepted once: its
  ``batch_id`` (chosen by the engine, kept with the batch until accepted) is the
  primary key of ``report_batches``, so a batch sent again is recognised and
  counts nothing twice (see ``docs/feedback.md``).
- Usage counts are increments: each accepted record is added to the row of its
  (license, engine, day, bundle). No text and no user ids are ever stored.
- The score histogram is stored as ``HISTOGRAM_BINS`` integer columns
  (``HISTOGRAM_COLUMNS``: ``bin_00`` counts scores in [0, 0.05), ``bin_19`` in
  [0.95, 1]), not as a JSON document: the dashboard sums them in SQL, and an
  increment adds to each column in the ``ON CONFLICT`` update.
  ``score_histogram`` reads and sets them as one list.
- ``usage_rollups`` holds the same sums per (organisation, day, bundle), added
  to in the same transaction as ``usage_days`` (``add_usage`` in
  ``portal.usage.service``, the only writer of both): the dashboard reads its
  series, bundle totals and histograms there, a few rows a day rather than one
  per engine.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime
from typing import Final

from sqlalchemy import BigInteger, Date, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from portal.db_base import Base, utc_now
from scoring_engine.usage import HISTOGRAM_BINS

HISTOGRAM_COLUMNS: Final = tuple(f"bin_{index:02d}" for index in range(HISTOGRAM_BINS))
"""The columns of ``usage_days`` holding the score histogram, lowest scores first."""


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


class _Histogram:
    """``score_histogram``: the ``HISTOGRAM_COLUMNS`` read and set as one list."""

    @property
    def score_histogram(self) -> list[int]:
        """The histogram's ``HISTOGRAM_BINS`` counts, lowest scores first."""
        return [getattr(self, name) for name in HISTOGRAM_COLUMNS]

    @score_histogram.setter
    def score_histogram(self, counts: Sequence[int]) -> None:
        if len(counts) != HISTOGRAM_BINS:
            raise ValueError(f"a score histogram has {HISTOGRAM_BINS} counts, not {len(counts)}")
        for name, count in zip(HISTOGRAM_COLUMNS, counts, strict=True):
            setattr(self, name, count)


class UsageDay(_Histogram, Base):
    __tablename__ = "usage_days"
    __table_args__ = (
        Index("ix_usage_days_organisation_day", "organisation_id", "day"),
        # The dashboard's per-engine table reads the index alone (no row lookups).
        Index(
            "ix_usage_days_engine_counts",
            "license_id",
            "engine_id",
            "day",
            "scored",
            "flagged",
            "reviewed",
        ),
        {"comment": "Usage per engine, UTC day and bundle; sums of increments."},
    )

    license_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("licenses.id", ondelete="RESTRICT"), primary_key=True
    )
    engine_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    bundle: Mapped[str] = mapped_column(String(128), primary_key=True)
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="RESTRICT")
    )
    scored: Mapped[int] = mapped_column(Integer, default=0)
    flagged: Mapped[int] = mapped_column(Integer, default=0)
    reviewed: Mapped[int] = mapped_column(Integer, default=0)
    not_grooming: Mapped[int] = mapped_column(Integer, default=0)
    grooming: Mapped[int] = mapped_column(Integer, default=0)
    imminent_threat: Mapped[int] = mapped_column(Integer, default=0)
    bin_00: Mapped[int] = mapped_column(
        Integer,
        default=0,
        comment="bin_00 to bin_19: counts of scores in 20 equal bins over [0, 1] "
        "(bin_NN: [NN/20, (NN+1)/20), bin_19 includes 1).",
    )
    bin_01: Mapped[int] = mapped_column(Integer, default=0)
    bin_02: Mapped[int] = mapped_column(Integer, default=0)
    bin_03: Mapped[int] = mapped_column(Integer, default=0)
    bin_04: Mapped[int] = mapped_column(Integer, default=0)
    bin_05: Mapped[int] = mapped_column(Integer, default=0)
    bin_06: Mapped[int] = mapped_column(Integer, default=0)
    bin_07: Mapped[int] = mapped_column(Integer, default=0)
    bin_08: Mapped[int] = mapped_column(Integer, default=0)
    bin_09: Mapped[int] = mapped_column(Integer, default=0)
    bin_10: Mapped[int] = mapped_column(Integer, default=0)
    bin_11: Mapped[int] = mapped_column(Integer, default=0)
    bin_12: Mapped[int] = mapped_column(Integer, default=0)
    bin_13: Mapped[int] = mapped_column(Integer, default=0)
    bin_14: Mapped[int] = mapped_column(Integer, default=0)
    bin_15: Mapped[int] = mapped_column(Integer, default=0)
    bin_16: Mapped[int] = mapped_column(Integer, default=0)
    bin_17: Mapped[int] = mapped_column(Integer, default=0)
    bin_18: Mapped[int] = mapped_column(Integer, default=0)
    bin_19: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now)


class UsageRollup(_Histogram, Base):
    """The sums of an organisation's ``usage_days`` rows per day and bundle (all its
    licenses and engines), added to by the same increments: what the dashboard's
    series, bundle totals and histograms are read from, a few rows a day however
    many engines report. Counts are 64-bit: many engines' sums may pass 2**31.
    """

    __tablename__ = "usage_rollups"
    __table_args__ = (
        {"comment": "Usage per organisation, UTC day and bundle: sums of its usage_days rows."},
    )

    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="RESTRICT"), primary_key=True
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    bundle: Mapped[str] = mapped_column(String(128), primary_key=True)
    scored: Mapped[int] = mapped_column(BigInteger, default=0)
    flagged: Mapped[int] = mapped_column(BigInteger, default=0)
    reviewed: Mapped[int] = mapped_column(BigInteger, default=0)
    not_grooming: Mapped[int] = mapped_column(BigInteger, default=0)
    grooming: Mapped[int] = mapped_column(BigInteger, default=0)
    imminent_threat: Mapped[int] = mapped_column(BigInteger, default=0)
    bin_00: Mapped[int] = mapped_column(
        BigInteger, default=0, comment="bin_00 to bin_19: as in usage_days, summed."
    )
    bin_01: Mapped[int] = mapped_column(BigInteger, default=0)
    bin_02: Mapped[int] = mapped_column(BigInteger, default=0)
    bin_03: Mapped[int] = mapped_column(BigInteger, default=0)
    bin_04: Mapped[int] = mapped_column(BigInteger, default=0)
    bin_05: Mapped[int] = mapped_column(BigInteger, default=0)
    bin_06: Mapped[int] = mapped_column(BigInteger, default=0)
    bin_07: Mapped[int] = mapped_column(BigInteger, default=0)
    bin_08: Mapped[int] = mapped_column(BigInteger, default=0)
    bin_09: Mapped[int] = mapped_column(BigInteger, default=0)
    bin_10: Mapped[int] = mapped_column(BigInteger, default=0)
    bin_11: Mapped[int] = mapped_column(BigInteger, default=0)
    bin_12: Mapped[int] = mapped_column(BigInteger, default=0)
    bin_13: Mapped[int] = mapped_column(BigInteger, default=0)
    bin_14: Mapped[int] = mapped_column(BigInteger, default=0)
    bin_15: Mapped[int] = mapped_column(BigInteger, default=0)
    bin_16: Mapped[int] = mapped_column(BigInteger, default=0)
    bin_17: Mapped[int] = mapped_column(BigInteger, default=0)
    bin_18: Mapped[int] = mapped_column(BigInteger, default=0)
    bin_19: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now)
