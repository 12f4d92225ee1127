"""Pages of query results, for the administrators' lists.

Pages are numbered from 1 and hold at most ``MAX_PER_PAGE`` rows, so a list
page costs one indexed ``LIMIT``/``OFFSET`` query and one ``COUNT`` whatever
the table's size (``benchmarks/bench_portal_pages.py`` measures the queue).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Generic, TypeVar

from sqlalchemy import func, select

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlalchemy import Select
    from sqlalchemy.orm import Session

T = TypeVar("T")

DEFAULT_PER_PAGE: Final = 50
MAX_PER_PAGE: Final = 200
MAX_PAGE: Final = 100_000


@dataclass(frozen=True)
class Page(Generic[T]):
    items: Sequence[T]
    number: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def has_next(self) -> bool:
        return self.number < self.pages


def clamp_page(number: int | None, per_page: int | None = None) -> tuple[int, int]:
    """A page number and size within bounds (a hand-edited URL never fails)."""
    size = min(max(per_page or DEFAULT_PER_PAGE, 1), MAX_PER_PAGE)
    return min(max(number or 1, 1), MAX_PAGE), size


def paginate(session: Session, query: Select[T], *, number: int, per_page: int) -> Page[T]:
    """One page of ``query`` (which must be ordered) and the total row count."""
    number, per_page = clamp_page(number, per_page)
    count_query = select(func.count()).select_from(query.order_by(None).subquery())
    total = session.scalar(count_query) or 0
    items = session.scalars(query.limit(per_page).offset((number - 1) * per_page)).all()
    return Page(items=items, number=number, per_page=per_page, total=total)
