"""Factories for the dashboard tests: usage rows as engines' reports leave them."""

from __future__ import annotations

import uuid
from datetime import date
from typing import TYPE_CHECKING, Any

import pytest

from portal.usage.models import UsageDay

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
    """One ``usage_days`` row of ``license_`` (its organisation's); counts default to 0."""

    def factory(
        license_: License,
        day: date,
        *,
        engine_id: uuid.UUID | None = None,
        bundle: str = "reference-2026.11.0",
        score_histogram: Sequence[int] | None = None,
        **counts: Any,
    ) -> UsageDay:
        row = UsageDay(
            license_id=license_.id,
            engine_id=engine_id or uuid.uuid4(),
            day=day,
            bundle=bundle,
            organisation_id=license_.organisation_id,
            scored=counts.pop("scored", 0),
            flagged=counts.pop("flagged", 0),
            reviewed=counts.pop("reviewed", 0),
            not_grooming=counts.pop("not_grooming", 0),
            grooming=counts.pop("grooming", 0),
            imminent_threat=counts.pop("imminent_threat", 0),
            score_histogram=list(score_histogram or [0] * BINS),
        )
        assert not counts, f"unknown counts {sorted(counts)}"
        session.add(row)
        session.flush()
        return row

    return factory
