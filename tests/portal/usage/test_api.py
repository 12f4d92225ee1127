"""``POST /api/v1/usage``: counts are added once per batch, from an engine that
holds a seat; anything malformed, oversized or unauthorised is refused whole.
"""

from __future__ import annotations

import gzip
import json
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import func, select
from starlette.exceptions import HTTPException

from licensing.leases import LeaseClaims, issue_lease
from portal.engines import service as engine_service
from portal.licenses import service as license_service
from portal.repository.service import license_signing_key, open_repository
from portal.usage.models import ReportBatch, UsageDay, UsageRollup
from portal.web import security
from portal.web.security import REPORT_MAX_BODY_BYTES
from tests.portal.support import ACTOR, run_async
from tests.portal.usage.support import (
    BUNDLE,
    USAGE,
    Reporter,
    activate,
    batch,
    usage_record,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from fastapi.testclient import TestClient
    from sqlalchemy.orm import Session

    from portal.settings import Settings
    from tests.portal.support import Licensed


def usage_rows(session: Session) -> list[UsageDay]:
    session.expire_all()
    return list(session.scalars(select(UsageDay).order_by(UsageDay.day, UsageDay.bundle)))


def batch_count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(ReportBatch)) or 0


def test_a_usage_batch_is_stored_per_engine_day_and_bundle(
    reporter: Reporter, session: Session
) -> None:
    body = batch(reporter.engine_id, [usage_record()])
    response = reporter.post(USAGE, body)
    assert response.status_code == 201, response.text
    assert response.json() == {"batch_id": body["batch_id"], "accepted": 1}
    [row] = usage_rows(session)
    assert (str(row.engine_id), row.day, row.bundle) == (
        reporter.engine_id,
        date(2026, 12, 1),
        BUNDLE,
    )
    assert (row.scored, row.flagged, row.reviewed) == (120, 3, 2)
    assert (row.not_grooming, row.grooming, row.imminent_threat) == (1, 1, 0)
    assert row.score_histogram == usage_record()["score_histogram"]
    assert row.license_id == reporter.licensed.license.id
    assert row.organisation_id == reporter.licensed.license.organisation_id


def test_a_gzipped_batch_is_accepted(reporter: Reporter, session: Session) -> None:
    response = reporter.post(USAGE, batch(reporter.engine_id, [usage_record()]), compress=True)
    assert response.status_code == 201, response.text
    assert [row.scored for row in usage_rows(session)] == [120]


def test_a_batch_sent_again_is_a_duplicate_and_counts_nothing_twice(
    reporter: Reporter, session: Session
) -> None:
    body = batch(reporter.engine_id, [usage_record()])
    assert reporter.post(USAGE, body).status_code == 201
    again = reporter.post(USAGE, body, compress=True)
    assert again.status_code == 200
    assert again.json() == {"batch_id": body["batch_id"], "accepted": 0, "duplicate": True}
    assert [row.scored for row in usage_rows(session)] == [120]
    assert batch_count(session) == 1


def test_increments_add_up_across_batches_and_within_one(
    reporter: Reporter, session: Session
) -> None:
    first = usage_record()
    second = usage_record(
        scored=10,
        flagged=1,
        reviewed=1,
        verdicts={"imminent_threat": 1},
        score_histogram=[0] * 19 + [10],
    )
    other_day = usage_record(day="2026-11-30")
    assert reporter.post(USAGE, batch(reporter.engine_id, [first])).status_code == 201
    response = reporter.post(USAGE, batch(reporter.engine_id, [second, other_day, second]))
    assert response.json()["accepted"] == 3
    november, december = usage_rows(session)
    assert (november.day, november.scored) == (date(2026, 11, 30), 120)
    assert (december.scored, december.flagged, december.reviewed) == (140, 5, 4)
    assert (december.not_grooming, december.grooming, december.imminent_threat) == (1, 1, 2)
    assert december.score_histogram[-1] == 2 + 20
    assert sum(december.score_histogram) == 140


def test_each_engine_has_its_own_rows(
    reporter: Reporter, client: TestClient, session: Session
) -> None:
    other = activate(client, reporter.licensed)
    for engine in (reporter, other):
        assert engine.post(USAGE, batch(engine.engine_id, [usage_record()])).status_code == 201
    assert sorted(str(row.engine_id) for row in usage_rows(session)) == sorted(
        [reporter.engine_id, other.engine_id]
    )


def test_the_organisations_rollup_sums_its_licenses_and_engines_per_day_and_bundle(
    reporter: Reporter,
    client: TestClient,
    session: Session,
    make_licensed: Callable[..., Licensed],
) -> None:
    second_license = activate(client, make_licensed())
    elsewhere = activate(client, make_licensed("Elsewhere Chat Ltd"))
    first, other_bundle = (
        usage_record(),
        usage_record(
            bundle="reference-2026.12.0",
            scored=3,
            flagged=0,
            reviewed=0,
            verdicts={},
            score_histogram=[3] + [0] * 19,
        ),
    )
    assert reporter.post(USAGE, batch(reporter.engine_id, [first, other_bundle])).status_code == 201
    for engine in (second_license, elsewhere):
        assert engine.post(USAGE, batch(engine.engine_id, [first])).status_code == 201
    session.expire_all()
    rollups = {
        (row.organisation_id, row.bundle): row
        for row in session.scalars(select(UsageRollup).order_by(UsageRollup.bundle))
    }
    ours = reporter.licensed.license.organisation_id
    theirs = elsewhere.licensed.license.organisation_id
    assert sorted(rollups) == sorted(
        [(ours, BUNDLE), (ours, "reference-2026.12.0"), (theirs, BUNDLE)]
    )
    summed = rollups[(ours, BUNDLE)]
    assert (summed.day, summed.scored, summed.flagged, summed.reviewed) == (
        date(2026, 12, 1),
        240,
        6,
        4,
    )
    assert (summed.not_grooming, summed.grooming, summed.imminent_threat) == (2, 2, 0)
    assert summed.score_histogram == [2 * count for count in first["score_histogram"]]
    assert rollups[(ours, "reference-2026.12.0")].score_histogram == [3] + [0] * 19
    assert rollups[(theirs, BUNDLE)].scored == 120
    by_license = [row for row in usage_rows(session) if row.bundle == BUNDLE]
    assert sum(row.scored for row in by_license) == 360


#### Who may report ####


def test_a_missing_lease_is_refused(reporter: Reporter, session: Session) -> None:
    response = reporter.client.post(
        USAGE, json=batch(reporter.engine_id, [usage_record()]), headers=reporter.licensed.headers
    )
    assert response.status_code == 401
    assert response.json()["error"] == "missing_lease"
    assert usage_rows(session) == []


def test_a_missing_license_is_refused_before_the_lease(reporter: Reporter) -> None:
    response = reporter.client.post(
        USAGE,
        json=batch(reporter.engine_id, [usage_record()]),
        headers={"X-Vigil-Lease": reporter.lease},
    )
    assert response.status_code == 401
    assert response.json()["error"] == "missing_license"


@pytest.mark.parametrize("lease", ["not-a-lease", "a.b.c"])
def test_a_malformed_lease_is_refused(reporter: Reporter, session: Session, lease: str) -> None:
    response = reporter.post(
        USAGE, batch(reporter.engine_id, [usage_record()]), headers={"X-Vigil-Lease": lease}
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_lease"
    assert usage_rows(session) == []


def test_the_lease_of_another_license_is_refused(
    reporter: Reporter, client: TestClient, make_licensed: Callable[..., Licensed]
) -> None:
    stranger = activate(client, make_licensed("Other Chat"))
    response = reporter.post(
        USAGE,
        batch(reporter.engine_id, [usage_record()]),
        headers={"X-Vigil-Lease": stranger.lease},
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_lease"
    assert "another license" in response.json()["detail"]


def test_a_batch_for_another_engine_than_the_lease_is_refused(
    reporter: Reporter, client: TestClient, session: Session
) -> None:
    other = activate(client, reporter.licensed)
    response = reporter.post(USAGE, batch(other.engine_id, [usage_record()]))
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_lease"
    assert "engine_id" in response.json()["detail"]
    assert usage_rows(session) == []
    assert batch_count(session) == 0


def test_an_expired_lease_is_refused_with_lease_expired(
    reporter: Reporter, initialised: Settings, session: Session
) -> None:
    [activation] = engine_service.active_activations(session, reporter.licensed.license.id)
    now = datetime.now(UTC).replace(microsecond=0)
    expired = issue_lease(
        LeaseClaims(
            iss=initialised.portal_url,
            sub=reporter.engine_id,
            jti=str(activation.id),
            lic=str(reporter.licensed.license.id),
            iat=now - timedelta(days=8),
            exp=now - timedelta(days=1),
        ),
        license_signing_key(initialised).key,
    )
    response = reporter.post(
        USAGE, batch(reporter.engine_id, [usage_record()]), headers={"X-Vigil-Lease": expired}
    )
    assert response.status_code == 403
    assert response.json()["error"] == "lease_expired"


def test_a_deactivated_engine_is_refused(reporter: Reporter, session: Session) -> None:
    [activation] = engine_service.active_activations(session, reporter.licensed.license.id)
    engine_service.deactivate_engine(
        session, reporter.licensed.license.id, activation.id, actor=ACTOR
    )
    session.flush()
    response = reporter.post(USAGE, batch(reporter.engine_id, [usage_record()]))
    assert response.status_code == 404
    assert response.json()["error"] == "not_activated"
    assert usage_rows(session) == []


def test_the_lease_of_an_earlier_activation_is_refused(
    reporter: Reporter, client: TestClient, session: Session
) -> None:
    [activation] = engine_service.active_activations(session, reporter.licensed.license.id)
    engine_service.deactivate_engine(
        session, reporter.licensed.license.id, activation.id, actor=ACTOR
    )
    session.flush()
    activate(client, reporter.licensed, reporter.engine_id)  # a new seat; the old lease stays
    response = reporter.post(USAGE, batch(reporter.engine_id, [usage_record()]))
    assert response.status_code == 401
    assert "earlier activation" in response.json()["detail"]


def test_a_revoked_license_is_refused(
    reporter: Reporter, initialised: Settings, session: Session
) -> None:
    license_service.revoke_license(
        session,
        reporter.licensed.license.id,
        reason="misuse",
        repository=open_repository(initialised),
        actor=ACTOR,
    )
    session.flush()
    response = reporter.post(USAGE, batch(reporter.engine_id, [usage_record()]))
    assert response.status_code == 403
    assert response.json()["error"] == "license_revoked"
    assert usage_rows(session) == []


def test_a_batch_id_of_another_license_is_a_conflict(
    reporter: Reporter, client: TestClient, make_licensed: Callable[..., Licensed], session: Session
) -> None:
    body = batch(reporter.engine_id, [usage_record()])
    assert reporter.post(USAGE, body).status_code == 201
    stranger = activate(client, make_licensed("Other Chat"))
    response = stranger.post(USAGE, {**body, "engine_id": stranger.engine_id})
    assert response.status_code == 409
    assert response.json()["error"] == "batch_conflict"
    assert len(usage_rows(session)) == 1


#### Malformed batches ####


@pytest.mark.parametrize(
    ("record", "field"),
    [
        (usage_record(scored="120"), "scored"),
        (usage_record(flagged=-1), "flagged"),
        (usage_record(reviewed=True), "reviewed"),
        (usage_record(day="2026-13-01"), "day"),
        (usage_record(day="2019-12-31"), "day"),
        (usage_record(day=(datetime.now(UTC).date() + timedelta(days=3)).isoformat()), "day"),
        (usage_record(bundle=""), "bundle"),
        (usage_record(bundle="has space"), "bundle"),
        (usage_record(score_histogram=[120]), "score_histogram"),
        (usage_record(score_histogram=[0] * 20), "score_histogram"),
        (usage_record(flagged=121), "flagged"),
        (usage_record(verdicts={"grooming": 5}), "verdicts"),
        (usage_record(verdicts={"grooming": "1"}), "verdicts.grooming"),
        ({k: v for k, v in usage_record().items() if k != "scored"}, "scored"),
        ("not an object", "record"),
    ],
)
def test_a_malformed_record_refuses_the_whole_batch_naming_record_and_field(
    reporter: Reporter, session: Session, record: object, field: str
) -> None:
    body = batch(reporter.engine_id, [usage_record(), record])
    response = reporter.post(USAGE, body)
    assert response.status_code == 422, response.text
    answer = response.json()
    assert answer["error"] == "invalid_batch"
    [problem] = answer["detail"]
    assert (problem["record"], problem["field"]) == (1, field)
    assert problem["reason"]
    assert usage_rows(session) == []
    assert batch_count(session) == 0
    # Nothing was kept: the same batch id is free for a corrected batch.
    body["records"] = [usage_record()]
    assert reporter.post(USAGE, body).status_code == 201


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", "body"),
        (b"[]", "body"),
        (json.dumps({"engine_id": "x", "records": []}).encode(), "batch_id"),
    ],
)
def test_a_body_that_is_not_a_batch_is_refused(reporter: Reporter, body: bytes, field: str) -> None:
    response = reporter.post(USAGE, body)
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_batch"
    assert response.json()["detail"][0]["record"] is None
    assert response.json()["detail"][0]["field"] == field


def test_more_than_1000_records_are_refused(reporter: Reporter, session: Session) -> None:
    response = reporter.post(USAGE, batch(reporter.engine_id, [usage_record()] * 1001))
    assert response.status_code == 422
    assert {"record": None, "field": "records", "reason": "at most 1000 records a batch"} in (
        response.json()["detail"]
    )
    assert usage_rows(session) == []


def test_the_detail_of_a_bad_batch_is_short(reporter: Reporter) -> None:
    response = reporter.post(USAGE, batch(reporter.engine_id, [usage_record(scored=-1)] * 500))
    assert response.status_code == 422
    assert len(response.json()["detail"]) == 20
    assert len(response.content) < 16 * 1024  # what an engine reads of an error


#### Bodies: size, encoding, type ####


def test_a_body_over_8_mib_is_refused(reporter: Reporter) -> None:
    body = b'{"batch_id": "' + b" " * REPORT_MAX_BODY_BYTES + b'"}'
    response = reporter.post(USAGE, body)
    assert response.status_code == 413
    assert response.json()["error"] == "request_too_large"


def test_a_gzip_bomb_is_refused_without_inflating_it(reporter: Reporter) -> None:
    bomb = gzip.compress(b"[" + b" " * (4 * REPORT_MAX_BODY_BYTES) + b"]", 9)
    assert len(bomb) < 64 * 1024
    response = reporter.post(USAGE, bomb, headers={"Content-Encoding": "gzip"})
    assert response.status_code == 413
    assert "decompressed" in response.json()["detail"]


def test_a_body_of_just_under_8_mib_decompressed_is_read(reporter: Reporter) -> None:
    body = json.dumps(batch(reporter.engine_id, [usage_record()])).encode()
    padding = b" " * (REPORT_MAX_BODY_BYTES - len(body))
    assert len(body[:-1] + padding + b"}") == REPORT_MAX_BODY_BYTES
    response = reporter.post(USAGE, body[:-1] + padding + b"}", compress=True)
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    "body", [b"definitely not gzip", gzip.compress(b'{"batch_id": 1}')[:-6]], ids=["junk", "cut"]
)
def test_a_body_that_is_not_gzip_is_refused(reporter: Reporter, body: bytes) -> None:
    response = reporter.post(USAGE, body, headers={"Content-Encoding": "gzip"})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_content_encoding"


def test_other_encodings_and_media_types_are_refused(reporter: Reporter) -> None:
    body = batch(reporter.engine_id, [usage_record()])
    brotli = reporter.post(USAGE, body, headers={"Content-Encoding": "br"})
    form = reporter.post(USAGE, body, headers={"Content-Type": "text/plain"})
    assert (brotli.status_code, form.status_code) == (415, 415)
    assert form.json()["error"] == "unsupported_media_type"


def test_concatenated_gzip_members_are_one_body(reporter: Reporter) -> None:
    body = json.dumps(batch(reporter.engine_id, [usage_record()])).encode()
    half = len(body) // 2
    response = reporter.post(
        USAGE,
        gzip.compress(body[:half]) + gzip.compress(body[half:]),
        headers={"Content-Encoding": "gzip"},
    )
    assert response.status_code == 201, response.text


def _received(chunks: list[bytes], limit: int) -> bytes:
    """What a route reads of a gzip body that arrives in ``chunks``."""
    messages = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]

    async def receive() -> dict[str, object]:
        return messages.pop(0)

    async def read() -> bytes:
        gunzipped = security._gunzipping_receive(receive, limit)  # type: ignore[arg-type]
        parts = []
        while True:
            message = await gunzipped()
            parts.append(message["body"])
            if not message["more_body"]:
                return b"".join(parts)

    return run_async(read)


def test_a_gzip_body_in_small_and_large_chunks_is_decoded_whole() -> None:
    plain = bytes(range(256)) * 2000 + b"end"
    compressed = gzip.compress(plain)
    for size in (1, 7, 4096, 40_000, len(compressed)):
        chunks = [compressed[i : i + size] for i in range(0, len(compressed), size)]
        if size == 1:
            chunks = [*chunks[:3000], b"".join(chunks[3000:])]  # keep the test quick
        assert _received(chunks, len(plain)) == plain
    with pytest.raises(HTTPException) as refused:
        _received([compressed], len(plain) - 1)
    assert refused.value.status_code == 413
