"""Factories for the dashboard tests: usage rows as engines' reports leave them."""

from __future__ import annotations

import uuid
from datetime import date
from typing import TYPE_CHECKING, Any

import pytest

from portal.db_base import utc_now
from portal.usage.models import HISTOGRAM_COLUMNS, UsageDay
from portal.usage.service import COUNT_COLUMNS
from portal.usage.service import add_usage as add_usage_rows

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from sqlalchemy.orm import Session

    from portal.licenses.models import License

BINS = 20


def histogram(**bins: int) -> list[int]:
    """20 counts, zero except the bins named ``b0`` .. ``b19``."""
    counts = [0] * BINS
    for name, count in bins.items():
        counts[int(name.removeprefix("b"))] = count
    return counts


@pytest.fixture
def add_usage(session: Session) -> Callable[..., UsageDay]:
    """Usage of one engine of ``license_`` on ``day`` as ingestion adds it (to
    ``usage_days`` and the organisation's rollups); counts default to 0.
    """

    def factory(
        license_: License,
        day: date,
        *,
        engine_id: uuid.UUID | None = None,
        bundle: str = "reference-2026.11.0",
        score_histogram: Sequence[int] | None = None,
        **counts: Any,
    ) -> UsageDay:
        row = {
            "license_id": license_.id,
            "engine_id": engine_id or uuid.uuid4(),
            "day": day,
            "bundle": bundle,
            "organisation_id": license_.organisation_id,
            "updated_at": utc_now(),
            **{name: counts.pop(name, 0) for name in COUNT_COLUMNS},
            **dict(zip(HISTOGRAM_COLUMNS, score_histogram or [0] * BINS, strict=True)),
        }
        assert not counts, f"unknown counts {sorted(counts)}"
        add_usage_rows(session, [row])
        key = (row["license_id"], row["engine_id"], day, bundle)
        stored = session.get(UsageDay, key)
        assert stored is not None
        return stored

    return factory
