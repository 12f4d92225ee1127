"""The bodies of ``POST /api/v1/usage`` and what every report batch shares (docs/feedback.md).

Rules of a batch, usage or feedback:

- ``{"batch_id": UUID, "engine_id": UUID, "records": [...]}``; at most
  ``MAX_RECORDS`` records; unknown members anywhere are ignored (a newer
  engine may send more), every member read is typed and bounded strictly (no
  number as a string, no boolean as a count).
- The body is parsed and validated in one pass by pydantic's JSON parser (the
  fast path: 1000 records per batch); the checks across the members of a
  record (a histogram that sums to ``scored``...) follow in plain Python.
- A malformed batch raises ``InvalidBatchError`` whose problems are
  ``{"record": INDEX or None, "field": "scored", "reason": ...}``, at most
  ``MAX_PROBLEMS`` of them (an engine's error answers are small), and never
  quote a value (a record may hold message text).

Usage record: ``day`` (UTC, ``YYYY-MM-DD``, from ``EARLIEST_DAY`` to tomorrow),
``bundle``, the counts ``scored``, ``flagged`` (at most ``scored``),
``reviewed``, ``verdicts`` (the three verdicts, missing ones 0, summing to
``reviewed``: each first verdict counts one review) and ``score_histogram``
(``HISTOGRAM_BINS`` counts summing to ``scored``). Counts are increments.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Final, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from portal.errors import InvalidBatchError
from scoring_engine.usage import HISTOGRAM_BINS

MAX_RECORDS: Final = 1000
MAX_PROBLEMS: Final = 20
MAX_COUNT: Final = 2**31 - 1
EARLIEST_DAY: Final = date(2020, 1, 1)
VERDICTS: Final = ("not_grooming", "grooming", "imminent_threat")

Verdict = Literal["not_grooming", "grooming", "imminent_threat"]
Count = Annotated[int, Field(strict=True, ge=0, le=MAX_COUNT)]
# A bundle version as the engine names it ("reference-2026.11.0"): printable, no spaces.
BundleName = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")
]

Problem = dict[str, object]


class StrictMember(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class VerdictCounts(StrictMember):
    not_grooming: Count = 0
    grooming: Count = 0
    imminent_threat: Count = 0


class UsageRecord(StrictMember):
    day: Annotated[date, Field(strict=True)]
    bundle: BundleName
    scored: Count
    flagged: Count
    reviewed: Count
    verdicts: VerdictCounts
    score_histogram: Annotated[
        list[Count], Field(min_length=HISTOGRAM_BINS, max_length=HISTOGRAM_BINS)
    ]


class UsageBatch(StrictMember):
    batch_id: uuid.UUID
    engine_id: uuid.UUID
    records: Annotated[list[UsageRecord], Field(max_length=MAX_RECORDS)]


B = TypeVar("B", bound=BaseModel)


def problem(record: int | None, field: str, reason: str) -> Problem:
    return {"record": record, "field": field, "reason": reason}


def _problems_of(error: ValidationError) -> list[Problem]:
    problems = []
    for item in error.errors(include_url=False, include_input=False, include_context=False):
        location = item["loc"]
        if item["type"] == "too_long" and location == ("records",):
            problems.append(problem(None, "records", f"at most {MAX_RECORDS} records a batch"))
            continue
        record: int | None = None
        if len(location) >= 2 and location[0] == "records" and isinstance(location[1], int):
            record, location = location[1], location[2:]
        field = ".".join(str(part) for part in location) or (
            "record" if record is not None else "body"
        )
        problems.append(problem(record, field, item["msg"]))
    return problems


def parse_batch(model: type[B], body: bytes) -> B:
    """Parse and validate a batch body.

    Raises:
        InvalidBatchError: Not JSON, or a member is missing, mistyped or out of range.
    """
    try:
        return model.model_validate_json(body)
    except ValidationError as error:
        raise InvalidBatchError(_problems_of(error)[:MAX_PROBLEMS]) from None


def raise_problems(problems: list[Problem]) -> None:
    if problems:
        raise InvalidBatchError(problems[:MAX_PROBLEMS])


@dataclass(frozen=True)
class UsageIncrement:
    """The sum of a batch's records for one (day, bundle)."""

    day: date
    bundle: str
    scored: int
    flagged: int
    reviewed: int
    not_grooming: int
    grooming: int
    imminent_threat: int
    score_histogram: tuple[int, ...]

    def __add__(self, other: UsageIncrement) -> UsageIncrement:
        return UsageIncrement(
            day=self.day,
            bundle=self.bundle,
            scored=self.scored + other.scored,
            flagged=self.flagged + other.flagged,
            reviewed=self.reviewed + other.reviewed,
            not_grooming=self.not_grooming + other.not_grooming,
            grooming=self.grooming + other.grooming,
            imminent_threat=self.imminent_threat + other.imminent_threat,
            score_histogram=tuple(
                a + b for a, b in zip(self.score_histogram, other.score_histogram, strict=True)
            ),
        )


def _record_problems(index: int, record: UsageRecord, latest_day: date) -> list[Problem]:
    problems = []
    if not EARLIEST_DAY <= record.day <= latest_day:
        problems.append(
            problem(index, "day", f"must be a UTC day from {EARLIEST_DAY} to {latest_day}")
        )
    if record.flagged > record.scored:
        problems.append(problem(index, "flagged", "must not exceed scored"))
    if sum(record.score_histogram) != record.scored:
        problems.append(problem(index, "score_histogram", "counts must add up to scored"))
    verdicts = record.verdicts
    if verdicts.not_grooming + verdicts.grooming + verdicts.imminent_threat != record.reviewed:
        problems.append(problem(index, "verdicts", "counts must add up to reviewed"))
    return problems


def usage_increments(batch: UsageBatch, *, now: datetime | None = None) -> list[UsageIncrement]:
    """The batch's records checked and summed per (day, bundle), in first-seen order.

    Raises:
        InvalidBatchError: A record's counts contradict each other, or its day is
            out of range.
    """
    latest_day = (now or datetime.now(UTC)).astimezone(UTC).date() + timedelta(days=1)
    problems: list[Problem] = []
    increments: dict[tuple[date, str], UsageIncrement] = {}
    for index, record in enumerate(batch.records):
        found = _record_problems(index, record, latest_day)
        if found:
            problems.extend(found)
            continue
        increment = UsageIncrement(
            day=record.day,
            bundle=record.bundle,
            scored=record.scored,
            flagged=record.flagged,
            reviewed=record.reviewed,
            not_grooming=record.verdicts.not_grooming,
            grooming=record.verdicts.grooming,
            imminent_threat=record.verdicts.imminent_threat,
            score_histogram=tuple(record.score_histogram),
        )
        key = (record.day, record.bundle)
        increments[key] = increments[key] + increment if key in increments else increment
    raise_problems(problems)
    return list(increments.values())


class BatchAnswer(BaseModel):
    """``201 {"batch_id", "accepted"}``, or ``200`` with ``"duplicate": true``."""

    batch_id: uuid.UUID
    accepted: int
    duplicate: bool | None = None


class FeedbackPolicy(BaseModel):
    """``GET /api/v1/feedback/policy``."""

    text_sharing: bool
    max_records: int = MAX_RECORDS
    max_body_bytes: int
