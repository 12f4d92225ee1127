"""The batch rules below the routes: a copy that wins the race, ids of the other kind,
counts that would overflow their column.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest

from portal.errors import BatchConflictError, InvalidBatchError
from portal.usage.models import HISTOGRAM_COLUMNS, ReportBatch, UsageDay
from portal.usage.schemas import MAX_COUNT
from portal.usage.service import BatchKind, claim_batch
from tests.portal.usage.support import (
    FEEDBACK,
    USAGE,
    batch,
    feedback_record,
    usage_record,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from tests.portal.usage.support import Reporter


def test_a_copy_that_claimed_the_batch_first_makes_this_one_a_duplicate(
    reporter: Reporter, session: Session
) -> None:
    license_id = reporter.licensed.license.id
    engine_id = uuid.UUID(reporter.engine_id)
    batch_id = uuid.uuid4()
    now = datetime.now(UTC)
    first = claim_batch(
        session,
        BatchKind.USAGE,
        batch_id,
        license_id=license_id,
        engine_id=engine_id,
        records=1,
        now=now,
    )
    assert first is None
    second = claim_batch(
        session,
        BatchKind.USAGE,
        batch_id,
        license_id=license_id,
        engine_id=engine_id,
        records=1,
        now=now,
    )
    assert second is not None
    assert (second.accepted, second.duplicate) == (0, True)
    with pytest.raises(BatchConflictError):
        claim_batch(
            session,
            BatchKind.FEEDBACK,
            batch_id,
            license_id=license_id,
            engine_id=engine_id,
            records=1,
            now=now,
        )


def test_a_usage_batch_id_sent_as_feedback_is_a_conflict(
    reporter: Reporter, session: Session
) -> None:
    body = batch(reporter.engine_id, [usage_record()])
    assert reporter.post(USAGE, body).status_code == 201
    response = reporter.post(FEEDBACK, {**body, "records": [feedback_record()]})
    assert (response.status_code, response.json()["error"]) == (409, "batch_conflict")
    stored = session.get(ReportBatch, uuid.UUID(body["batch_id"]))
    assert stored is not None
    assert stored.kind == "usage"


def test_counts_that_would_overflow_refuse_the_batch(reporter: Reporter, session: Session) -> None:
    big = usage_record(
        scored=MAX_COUNT,
        flagged=0,
        reviewed=0,
        verdicts={},
        score_histogram=[MAX_COUNT] + [0] * 19,
    )
    assert reporter.post(USAGE, batch(reporter.engine_id, [big])).status_code == 201
    again = reporter.post(
        USAGE,
        batch(
            reporter.engine_id,
            [
                usage_record(
                    scored=1, flagged=0, reviewed=0, verdicts={}, score_histogram=[1] + [0] * 19
                )
            ],
        ),
    )
    assert again.status_code == 422
    assert again.json()["detail"][0]["reason"] == "a day's counts would overflow"
    session.expire_all()
    [row] = session.query(UsageDay).all()
    assert row.scored == MAX_COUNT


def test_the_problems_of_a_batch_name_the_first_in_the_message() -> None:
    error = InvalidBatchError([{"record": 3, "field": "scored", "reason": "too big"}])
    assert str(error) == "1 problem(s) in the batch, first record 3: scored: too big"
    assert error.json_detail() == [{"record": 3, "field": "scored", "reason": "too big"}]


def test_records_of_one_batch_that_overflow_a_new_row_refuse_the_batch(
    reporter: Reporter, session: Session
) -> None:
    half = usage_record(
        scored=MAX_COUNT // 2 + 1,
        flagged=0,
        reviewed=0,
        verdicts={},
        score_histogram=[MAX_COUNT // 2 + 1] + [0] * 19,
    )
    refused = reporter.post(USAGE, batch(reporter.engine_id, [half, half]))
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["reason"] == "a day's counts would overflow"
    assert session.query(UsageDay).count() == 0


def test_the_histogram_is_read_and_set_as_its_twenty_bin_columns() -> None:
    row = UsageDay(score_histogram=list(range(20)))
    assert (row.bin_00, row.bin_07, row.bin_19) == (0, 7, 19)
    assert row.score_histogram == list(range(20))
    assert HISTOGRAM_COLUMNS[::19] == ("bin_00", "bin_19")
    with pytest.raises(ValueError, match="20 counts, not 19"):
        row.score_histogram = [0] * 19
