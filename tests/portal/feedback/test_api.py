"""``POST /api/v1/feedback`` and ``GET /api/v1/feedback/policy``: verdicts with their
feature vectors are kept once per batch, a correction replaces a verdict, and text
arrives only when the organisation enabled sharing.
"""

from __future__ import annotations

import base64
import uuid
import zlib
from typing import TYPE_CHECKING

import numpy as np
import pytest
from sqlalchemy import func, select

from portal.engines import service as engine_service
from portal.feedback.models import Feedback
from portal.feedback.service import feedback_examples
from portal.organisations.models import Organisation
from portal.usage.models import ReportBatch
from portal.web.security import REPORT_MAX_BODY_BYTES
from tests.portal.support import ACTOR
from tests.portal.usage.support import (
    BUNDLE,
    FEEDBACK,
    POLICY,
    Reporter,
    activate,
    batch,
    feedback_record,
    vector,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from fastapi.testclient import TestClient
    from sqlalchemy.orm import Session

    from tests.portal.support import Licensed

SHARED_TEXT = {"messages": [{"author": "u1", "text": "synthetic message"}]}


def stored(session: Session) -> list[Feedback]:
    session.expire_all()
    return list(session.scalars(select(Feedback).order_by(Feedback.received_at)))


def enable_text_sharing(session: Session, reporter: Reporter, *, enabled: bool = True) -> None:
    organisation = session.get(Organisation, reporter.licensed.license.organisation_id)
    assert organisation is not None
    organisation.text_sharing_enabled = enabled
    session.flush()


def test_feedback_is_stored_with_its_vector_and_read_back_for_training(
    reporter: Reporter, session: Session
) -> None:
    record = feedback_record(features=vector(nnz=50, seed=3).to_dict())
    body = batch(reporter.engine_id, [record])
    response = reporter.post(FEEDBACK, body, compress=True)
    assert response.status_code == 201, response.text
    assert response.json() == {"batch_id": body["batch_id"], "accepted": 1}
    [row] = stored(session)
    assert str(row.feedback_id) == record["feedback_id"]
    assert (row.bundle, row.verdict, row.score, row.threshold) == (BUNDLE, "grooming", 0.93, 0.8)
    assert row.characteristics == {"secrecy": 0.6, "isolation": 0.0}
    assert row.reviewed_at.isoformat() == "2026-12-02T10:00:00+00:00"
    assert str(row.engine_id) == reporter.engine_id
    assert str(row.batch_id) == body["batch_id"]
    assert (row.vector_dim, row.vector_nnz) == (vector().dim, 50)
    # No text: SQL NULL, not a JSON null document.
    assert session.scalar(select(func.count()).where(Feedback.shared_text.is_(None))) == 1
    [example] = feedback_examples(session)
    assert example.feedback_id == record["feedback_id"]
    assert example.organisation == "Example Chat Ltd"
    assert example.is_grooming
    expected = vector(nnz=50, seed=3)
    assert np.array_equal(example.vector.indices, expected.indices)
    assert np.array_equal(example.vector.values, expected.values)


def test_a_feedback_batch_sent_again_is_a_duplicate(reporter: Reporter, session: Session) -> None:
    body = batch(reporter.engine_id, [feedback_record(), feedback_record()])
    assert reporter.post(FEEDBACK, body).status_code == 201
    again = reporter.post(FEEDBACK, body)
    assert again.status_code == 200
    assert again.json() == {"batch_id": body["batch_id"], "accepted": 0, "duplicate": True}
    assert len(stored(session)) == 2


def test_a_feedback_id_seen_again_replaces_the_verdict(
    reporter: Reporter, session: Session
) -> None:
    record = feedback_record()
    assert reporter.post(FEEDBACK, batch(reporter.engine_id, [record])).status_code == 201
    [first] = stored(session)
    received_at = first.received_at
    correction = {**record, "verdict": "not_grooming", "reviewed_at": "2026-12-02T11:00:00Z"}
    second = batch(reporter.engine_id, [correction])
    response = reporter.post(FEEDBACK, second)
    assert response.status_code == 201
    assert response.json()["accepted"] == 1
    [row] = stored(session)
    assert row.verdict == "not_grooming"
    assert row.reviewed_at.hour == 11
    assert str(row.batch_id) == second["batch_id"]
    assert row.received_at == received_at
    assert [example.verdict for example in feedback_examples(session)] == ["not_grooming"]


def test_a_batch_of_new_verdicts_and_a_correction_stores_both(
    reporter: Reporter, session: Session
) -> None:
    """On PostgreSQL the batch is first copied in as new: the stored id makes that fail,
    keeping nothing of it, and the batch is upserted (the fresh row kept, the stored one
    corrected)."""
    record = feedback_record()
    assert reporter.post(FEEDBACK, batch(reporter.engine_id, [record])).status_code == 201
    fresh = feedback_record()
    correction = {**record, "verdict": "not_grooming", "reviewed_at": "2026-12-02T11:00:00Z"}
    response = reporter.post(FEEDBACK, batch(reporter.engine_id, [fresh, correction]))
    assert response.status_code == 201
    assert response.json()["accepted"] == 2
    verdicts = {str(row.feedback_id): row.verdict for row in stored(session)}
    assert verdicts == {record["feedback_id"]: "not_grooming", fresh["feedback_id"]: "grooming"}


def test_a_stale_verdict_arriving_late_does_not_replace_a_correction(
    reporter: Reporter, session: Session
) -> None:
    # Engines send batches concurrently: the correction can arrive first.
    record = feedback_record()
    correction = {**record, "verdict": "not_grooming", "reviewed_at": "2026-12-02T11:00:00Z"}
    newer = batch(reporter.engine_id, [correction])
    assert reporter.post(FEEDBACK, newer).status_code == 201
    late = reporter.post(FEEDBACK, batch(reporter.engine_id, [record]))
    assert late.status_code == 201
    assert late.json()["accepted"] == 1
    [row] = stored(session)
    assert (row.verdict, row.reviewed_at.hour) == ("not_grooming", 11)
    assert str(row.batch_id) == newer["batch_id"]
    # The same time again (a re-sent copy under a new batch id) still replaces it.
    again = batch(reporter.engine_id, [{**correction, "verdict": "grooming"}])
    assert reporter.post(FEEDBACK, again).status_code == 201
    [row] = stored(session)
    assert row.verdict == "grooming"


def test_the_later_of_two_records_of_one_id_in_a_batch_wins(
    reporter: Reporter, session: Session
) -> None:
    record = feedback_record()
    later = {**record, "verdict": "imminent_threat"}
    response = reporter.post(FEEDBACK, batch(reporter.engine_id, [record, later]))
    assert response.status_code == 201
    assert [row.verdict for row in stored(session)] == ["imminent_threat"]


def test_a_feedback_id_of_another_license_is_refused(
    reporter: Reporter,
    client: TestClient,
    make_licensed: Callable[..., Licensed],
    session: Session,
) -> None:
    record = feedback_record()
    assert reporter.post(FEEDBACK, batch(reporter.engine_id, [record])).status_code == 201
    stranger = activate(client, make_licensed("Other Chat"))
    response = stranger.post(
        FEEDBACK,
        batch(stranger.engine_id, [feedback_record(), {**record, "verdict": "not_grooming"}]),
    )
    assert response.status_code == 422
    assert response.json()["detail"] == [
        {"record": 1, "field": "feedback_id", "reason": "already reported under another license"}
    ]
    assert [row.verdict for row in stored(session)] == ["grooming"]


#### Text sharing ####


def test_text_is_refused_when_the_organisation_has_not_enabled_sharing(
    reporter: Reporter, session: Session
) -> None:
    body = batch(reporter.engine_id, [feedback_record(), feedback_record(text=SHARED_TEXT)])
    response = reporter.post(FEEDBACK, body)
    assert response.status_code == 403
    assert response.json()["error"] == "text_sharing_disabled"
    assert stored(session) == []
    assert session.get(ReportBatch, uuid.UUID(body["batch_id"])) is None


def test_text_is_kept_when_the_organisation_enabled_sharing(
    reporter: Reporter, session: Session
) -> None:
    enable_text_sharing(session, reporter)
    shared = {"messages": [{"author": "u1", "text": "synthetic message", "ts": "ignored"}]}
    body = batch(reporter.engine_id, [feedback_record(text=shared), feedback_record()])
    assert reporter.post(FEEDBACK, body).status_code == 201
    texts = sorted((row.shared_text for row in stored(session)), key=lambda text: text is None)
    assert texts == [SHARED_TEXT, None]


def test_the_policy_follows_the_organisations_switch(reporter: Reporter, session: Session) -> None:
    answer = reporter.client.get(POLICY, headers=reporter.headers)
    assert answer.status_code == 200
    assert answer.json() == {
        "text_sharing": False,
        "max_records": 1000,
        "max_body_bytes": REPORT_MAX_BODY_BYTES,
    }
    enable_text_sharing(session, reporter)
    assert reporter.client.get(POLICY, headers=reporter.headers).json()["text_sharing"] is True
    enable_text_sharing(session, reporter, enabled=False)
    assert reporter.client.get(POLICY, headers=reporter.headers).json()["text_sharing"] is False


def test_the_policy_needs_the_lease_of_an_active_engine(
    reporter: Reporter, session: Session
) -> None:
    missing = reporter.client.get(POLICY, headers=reporter.licensed.headers)
    assert (missing.status_code, missing.json()["error"]) == (401, "missing_lease")
    [activation] = engine_service.active_activations(session, reporter.licensed.license.id)
    engine_service.deactivate_engine(
        session, reporter.licensed.license.id, activation.id, actor=ACTOR
    )
    session.flush()
    refused = reporter.client.get(POLICY, headers=reporter.headers)
    assert (refused.status_code, refused.json()["error"]) == (404, "not_activated")


#### Who may report ####


def test_feedback_for_another_engine_than_the_lease_is_refused(
    reporter: Reporter, client: TestClient, session: Session
) -> None:
    other = activate(client, reporter.licensed)
    response = reporter.post(FEEDBACK, batch(other.engine_id, [feedback_record()]))
    assert (response.status_code, response.json()["error"]) == (401, "invalid_lease")
    assert stored(session) == []


def test_feedback_without_a_lease_is_refused(reporter: Reporter, session: Session) -> None:
    response = reporter.client.post(
        FEEDBACK,
        json=batch(reporter.engine_id, [feedback_record()]),
        headers=reporter.licensed.headers,
    )
    assert (response.status_code, response.json()["error"]) == (401, "missing_lease")
    assert stored(session) == []


#### Malformed records ####


def _features(**overrides: object) -> dict[str, object]:
    return {**vector().to_dict(), **overrides}


def _zlib_of(data: bytes) -> str:
    return base64.b64encode(zlib.compress(data)).decode()


def _raw_vector(indices: list[int], values: list[float], **overrides: object) -> dict:
    data = np.array(indices, dtype="<i4").tobytes() + np.array(values, dtype="<f4").tobytes()
    return _features(nnz=len(indices), data=_zlib_of(data), **overrides)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"feedback_id": "not-a-uuid"}, "feedback_id"),
        ({"score": 1.5}, "score"),
        ({"score": "0.9"}, "score"),
        ({"threshold": -0.1}, "threshold"),
        ({"verdict": "maybe"}, "verdict"),
        ({"reviewed_at": "2026-12-02T10:00:00"}, "reviewed_at"),
        ({"characteristics": {"Secrecy!": 0.5}}, "characteristics.Secrecy!.[key]"),
        ({"characteristics": {"secrecy": 2}}, "characteristics.secrecy"),
        ({"bundle": None}, "bundle"),
        ({"text": {"messages": [{"author": "u1"}]}}, "text.messages.0.text"),
        ({"features": "eJz"}, "features"),
        ({"features": _features(encoding="raw")}, "features.encoding"),
        ({"features": _features(nnz=41)}, "features.data"),
        ({"features": _features(data="!!!not base64")}, "features.data"),
        ({"features": _features(data=_zlib_of(b"\x00" * 7))}, "features.data"),
        ({"features": _features(dim=0)}, "features.dim"),
        ({"features": _features(nnz=10, dim=5)}, "features.nnz"),
        ({"features": _features(data="é" * 8)}, "features.data"),
        ({"features": _raw_vector([3, 2], [0.5, 0.5])}, "features.data"),
        ({"features": _raw_vector([3, 3], [0.5, 0.5])}, "features.data"),
        ({"features": _raw_vector([-1, 2], [0.5, 0.5])}, "features.data"),
        ({"features": _raw_vector([1, 10], [0.5, 0.5], dim=10)}, "features.data"),
        ({"features": _raw_vector([1, 2], [0.5, float("nan")])}, "features.data"),
        ({"features": _raw_vector([1, 2], [float("inf"), 0.5])}, "features.data"),
    ],
)
def test_a_malformed_record_refuses_the_batch_naming_record_and_field(
    reporter: Reporter, session: Session, overrides: dict[str, object], field: str
) -> None:
    body = batch(reporter.engine_id, [feedback_record(), feedback_record(**overrides)])
    response = reporter.post(FEEDBACK, body)
    assert response.status_code == 422, response.text
    answer = response.json()
    assert answer["error"] == "invalid_batch"
    assert [(item["record"], item["field"]) for item in answer["detail"]] == [(1, field)]
    assert stored(session) == []
    assert session.get(ReportBatch, uuid.UUID(body["batch_id"])) is None


def test_bad_vectors_are_named_by_record_and_reason(reporter: Reporter) -> None:
    records = [
        feedback_record(features=_raw_vector([1, 2], [0.5, float("nan")])),
        feedback_record(),
        feedback_record(features=_raw_vector([5, 4], [0.5, 0.5])),
        feedback_record(features=_features(nnz=39)),
    ]
    response = reporter.post(FEEDBACK, batch(reporter.engine_id, records))
    assert response.status_code == 422
    assert response.json()["detail"] == [
        {"record": 0, "field": "features.data", "reason": "values must be finite"},
        {
            "record": 2,
            "field": "features.data",
            "reason": "indices must be increasing and below dim",
        },
        {"record": 3, "field": "features.data", "reason": "length does not match features.nnz"},
    ]


def test_an_empty_vector_and_one_at_the_last_index_are_accepted(
    reporter: Reporter, session: Session
) -> None:
    records = [
        feedback_record(features=_raw_vector([], [])),
        feedback_record(features=_raw_vector([0, 9], [1.0, -2.0], dim=10)),
    ]
    assert reporter.post(FEEDBACK, batch(reporter.engine_id, records)).status_code == 201
    examples = sorted(feedback_examples(session), key=lambda example: example.vector.dim)
    assert [example.vector.indices.tolist() for example in examples] == [[0, 9], []]
    assert examples[0].vector.values.tolist() == [1.0, -2.0]


def test_the_answer_to_a_bad_batch_never_quotes_its_text(reporter: Reporter) -> None:
    sentence = "a synthetic private sentence"
    record = feedback_record(text={"messages": [{"author": 7, "text": sentence}]})
    response = reporter.post(FEEDBACK, batch(reporter.engine_id, [record]))
    assert response.status_code == 422
    assert sentence not in response.text


def test_more_than_1000_feedback_records_are_refused(reporter: Reporter, session: Session) -> None:
    record = feedback_record(features=vector(nnz=1).to_dict())
    response = reporter.post(FEEDBACK, batch(reporter.engine_id, [record] * 1001), compress=True)
    assert response.status_code == 422
    assert response.json()["detail"][0]["field"] == "records"
    assert stored(session) == []


def test_a_full_batch_of_1000_records_is_accepted(reporter: Reporter, session: Session) -> None:
    records = [feedback_record(features=vector(nnz=20, seed=i).to_dict()) for i in range(1000)]
    response = reporter.post(FEEDBACK, batch(reporter.engine_id, records), compress=True)
    assert response.status_code == 201, response.text[:300]
    assert response.json()["accepted"] == 1000
    assert session.scalar(select(func.count()).select_from(Feedback)) == 1000
