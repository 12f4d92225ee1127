"""``scoring_engine.outbox`` without a portal: what is queued, how it is batched, retries."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from scoring_engine import outbox
from scoring_engine.home import EngineHome
from scoring_engine.localdb import connect
from scoring_engine.outbox import ReportPolicy, RetryPolicy, pending, queue_reports
from tests.scoring_engine.report.conftest import add_item, add_usage, outbox_rows, vector

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
ENGINE_ID = "0b5bd7e2-3f0e-4c1e-9d4e-6a8a4f3b2c1d"
TINY_VECTOR = (
    '{"version":2,"dim":262156,"nnz":0,"encoding":"zlib+le-int32-float32","data":"eJwDAAAAAAE="}'
)


def _queue(home, policy=None, **kwargs):
    with connect(EngineHome(home)) as connection:
        return queue_reports(connection, ENGINE_ID, policy or ReportPolicy(), NOW, **kwargs)


def _bulk_items(home, count):
    """``count`` reviewed items, inserted in one go (the vectors are empty: size is not
    what this measures)."""
    score_line = json.dumps({"characteristics": {"secrecy": 0.5}})
    reviewed_at = "2026-12-01T00:00:00Z"
    rows = (
        (f"{i:032x}", f"c{i}", "b", 0.9, 0.5, score_line, TINY_VECTOR, "grooming", reviewed_at)
        for i in range(count)
    )
    with connect(EngineHome(home)) as connection:
        connection.executemany(
            "INSERT INTO review_items (item_id, conversation_id, queued_at, bundle, score,"
            " threshold, score_line, features, verdict, reviewed_at) VALUES"
            " (?, ?, '2026-12-01T00:00:00Z', ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )


def test_100k_feedback_records_are_split_by_max_records(tmp_path):
    _bulk_items(tmp_path, 100_000)

    queued = _queue(tmp_path, ReportPolicy(max_records=1000))

    assert (queued.feedback_records, queued.batches) == (100_000, 100)
    rows = outbox_rows(tmp_path)
    assert {row["records"] for row in rows} == {1000}
    assert len({row["batch_id"] for row in rows}) == 100
    feedback_ids = set()
    for row in rows:
        body = json.loads(row["payload"])
        assert (body["batch_id"], body["engine_id"]) == (row["batch_id"], ENGINE_ID)
        assert len(body["records"]) == 1000
        feedback_ids.update(record["feedback_id"] for record in body["records"])
    assert len(feedback_ids) == 100_000
    with connect(EngineHome(tmp_path)) as connection:
        left = connection.execute(
            "SELECT COUNT(*) FROM review_items WHERE seq NOT IN (SELECT seq FROM feedback_queued)"
        ).fetchone()[0]
    assert left == 0
    assert _queue(tmp_path).batches == 0  # nothing is queued twice


def test_batches_stay_under_max_body_bytes(tmp_path):
    for i in range(12):
        add_item(tmp_path, features=vector(i, nnz=3000))  # about 20 kB each
    limit = 64 * 1024

    _queue(tmp_path, ReportPolicy(max_body_bytes=limit))

    rows = outbox_rows(tmp_path)
    assert len(rows) > 1
    assert all(len(row["payload"].encode()) <= limit for row in rows)
    assert sum(row["records"] for row in rows) == 12


def test_usage_rows_move_into_the_outbox_in_the_same_transaction(tmp_path):
    add_usage(tmp_path, scored=10, day="2026-12-01")
    add_usage(tmp_path, scored=20, day="2026-12-02")
    add_item(tmp_path)

    queued = _queue(tmp_path)

    assert (queued.usage_records, queued.feedback_records, queued.batches) == (2, 1, 2)
    usage_row = outbox_rows(tmp_path)[0]
    records = json.loads(usage_row["payload"])["records"]
    assert [(r["day"], r["scored"]) for r in records] == [("2026-12-01", 10), ("2026-12-02", 20)]
    assert records[0]["verdicts"] == {"not_grooming": 0, "grooming": 1, "imminent_threat": 0}
    assert len(records[0]["score_histogram"]) == 20
    assert pending(EngineHome(tmp_path)).total == 2  # two batches, nothing else left


def test_a_failed_queuing_leaves_everything_where_it_was(tmp_path, monkeypatch):
    add_usage(tmp_path)
    add_item(tmp_path)

    def broken_id():
        raise sqlite3.OperationalError("disk full")

    with pytest.raises(sqlite3.OperationalError):
        _queue(tmp_path, new_id=broken_id)

    assert outbox_rows(tmp_path) == []
    left = pending(EngineHome(tmp_path))
    assert (left.usage_rows, left.feedback_items, left.batches) == (1, 1, 0)


def test_a_damaged_item_stays_in_the_queue_and_is_counted(tmp_path):
    add_item(tmp_path)
    damaged = add_item(tmp_path)
    with connect(EngineHome(tmp_path)) as connection:
        connection.execute(
            "UPDATE review_items SET features = '{trunc' WHERE item_id = ?", (damaged,)
        )

    queued = _queue(tmp_path)

    assert (queued.feedback_records, queued.unreadable) == (1, 1)


def test_text_follows_the_policy_and_the_confirmation(tmp_path):
    shared = add_item(tmp_path, texts=["a secret"], share_text=True)
    add_item(tmp_path, texts=["another"], share_text=False)

    off = _queue(tmp_path, ReportPolicy(text_sharing=False))
    assert off.with_text == 0
    assert "a secret" not in outbox_rows(tmp_path)[0]["payload"]

    with connect(EngineHome(tmp_path)) as connection:
        connection.execute("DELETE FROM outbox")
        connection.execute("DELETE FROM feedback_queued")
    on = _queue(tmp_path, ReportPolicy(text_sharing=True))
    assert on.with_text == 1
    records = json.loads(outbox_rows(tmp_path)[0]["payload"])["records"]
    texts = {r["feedback_id"].replace("-", ""): r["text"] for r in records}
    assert texts[shared] == {"messages": [{"author": "u1", "text": "a secret"}]}
    assert list(texts.values()).count(None) == 1


def test_only_a_body_carrying_text_is_scrubbed_once_sent(tmp_path):
    # A message that spells the marker out is escaped in the body: it is not the marker.
    add_item(tmp_path, texts=['say "text":{ to me'], share_text=True)
    add_item(tmp_path, texts=["never shared"], share_text=False)
    _queue(tmp_path, ReportPolicy(text_sharing=True, max_records=1))

    carries = {
        json.loads(row["payload"])["records"][0]["text"] is not None: outbox._SHARED_TEXT
        in row["payload"].encode()
        for row in outbox_rows(tmp_path)
    }
    assert carries == {True: True, False: False}


@pytest.mark.parametrize("scrub", [True, False])
def test_a_sent_body_is_overwritten_in_the_file_unless_it_carries_no_text(tmp_path, scrub):
    home = EngineHome(tmp_path)
    marker = "synthetic-outbox-marker-" * 400  # a body of overflow pages, as real ones are
    with connect(home) as connection:
        connection.execute(
            "INSERT INTO outbox (batch_id, kind, created_at, payload, records)"
            " VALUES ('b1', 'feedback', '2026-12-02T12:00:00Z', ?, 1)",
            (marker,),
        )

    def in_the_file() -> bool:
        connection = sqlite3.connect(home.path / "local.sqlite3")
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        connection.close()
        return marker[:48].encode() in (home.path / "local.sqlite3").read_bytes()

    assert in_the_file()
    outbox._record_attempts(home, "b1", 1, None, "2026-12-02T12:00:01Z", scrub=scrub)
    assert in_the_file() is not scrub
    assert outbox_rows(tmp_path)[0]["payload"] == ""


def test_expired_text_is_purged_before_it_could_be_shared(tmp_path):
    add_item(tmp_path, texts=["old secret"], share_text=True, reviewed_at="2026-01-01T00:00:00Z")
    queued = _queue(tmp_path, ReportPolicy(text_sharing=True), retention=timedelta(days=90))
    assert (queued.with_text, queued.texts_purged) == (0, 1)
    assert "old secret" not in outbox_rows(tmp_path)[0]["payload"]


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ({"text_sharing": True, "max_records": 50, "max_body_bytes": 1 << 20}, (True, 50, 1 << 20)),
        ({"text_sharing": "yes"}, (False, 1000, 8 << 20)),
        ({"text_sharing": 1, "max_records": 0, "max_body_bytes": 1}, (False, 1, 64 * 1024)),
        ({"max_records": 10**9, "max_body_bytes": True}, (False, 100_000, 8 << 20)),
    ],
)
def test_the_policy_is_read_strictly_and_bounded(answer, expected):
    policy = ReportPolicy.from_answer(answer)
    assert (policy.text_sharing, policy.max_records, policy.max_body_bytes) == expected


def test_retry_delays_grow_exponentially_up_to_a_ceiling_with_jitter():
    low = RetryPolicy(base_delay=1.0, max_delay=5.0, jitter=lambda: 0.0)
    high = RetryPolicy(base_delay=1.0, max_delay=5.0, jitter=lambda: 0.999)
    assert [low.delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 2.5, 2.5]
    assert all(4.9 < high.delay(n) <= 5.0 for n in (4, 5, 9))


def test_the_default_retries_are_bounded():
    policy = RetryPolicy()
    worst = sum(policy.max_delay for _ in range(policy.attempts - 1))
    assert policy.attempts <= 5
    assert worst <= 30


def test_a_conversation_too_long_for_any_batch_goes_without_its_text(tmp_path):
    long_one = add_item(tmp_path, texts=["x" * 70_000], share_text=True)
    short_one = add_item(tmp_path, texts=["short"], share_text=True)

    queued = _queue(tmp_path, ReportPolicy(text_sharing=True, max_body_bytes=64 * 1024))

    assert (queued.feedback_records, queued.with_text) == (2, 1)
    texts = {
        record["feedback_id"].replace("-", ""): record["text"]
        for row in outbox_rows(tmp_path)
        for record in json.loads(row["payload"])["records"]
    }
    assert texts[long_one] is None
    assert texts[short_one] == {"messages": [{"author": "u1", "text": "short"}]}
    assert all(len(row["payload"].encode()) <= 64 * 1024 for row in outbox_rows(tmp_path))


def _steps(home, policy):
    return outbox.queue_in_steps(EngineHome(home), ENGINE_ID, policy, NOW)


def test_queuing_in_steps_commits_each_batch_and_a_stopped_run_leaves_the_rest(tmp_path):
    add_usage(tmp_path, scored=10)
    _bulk_items(tmp_path, 2500)
    policy = ReportPolicy(max_records=1000)
    steps = _steps(tmp_path, policy)

    usage_step, usage_batches = next(steps)
    first_step, first_batches = next(steps)
    steps.close()  # the run stops here (a crash would leave the same)

    assert (usage_step.usage_records, [b.kind for b in usage_batches]) == (1, ["usage"])
    assert (first_step.feedback_records, [b.records for b in first_batches]) == (1000, [1000])
    committed = outbox_rows(tmp_path)
    assert [row["batch_id"] for row in committed] == [
        b.batch_id for b in usage_batches + first_batches
    ]
    rest = list(_steps(tmp_path, policy))
    assert [step.feedback_records for step, _ in rest] == [0, 1000, 500]
    sent_ids = set()
    for row in outbox_rows(tmp_path):
        sent_ids.update(r.get("feedback_id") for r in json.loads(row["payload"])["records"])
    assert len(sent_ids - {None}) == 2500  # every item once, none twice
    assert pending(EngineHome(tmp_path)).feedback_items == 0


def test_each_step_hands_its_batches_over_with_the_body_it_committed(tmp_path):
    _bulk_items(tmp_path, 1500)
    steps = list(_steps(tmp_path, ReportPolicy(max_records=1000)))
    batches = [batch for _, step_batches in steps for batch in step_batches]
    stored = {row["batch_id"]: row["payload"] for row in outbox_rows(tmp_path)}
    assert [batch.records for batch in batches] == [1000, 500]
    assert all(batch.body == stored[batch.batch_id] for batch in batches)


def test_a_feed_far_ahead_of_its_senders_leaves_the_bodies_in_the_outbox():
    batches = [outbox._Batch(f"b{i}", "feedback", 1, body="{}") for i in range(12)]
    feed = outbox._Feed(batches)
    feed.close()
    taken = iter(feed.take, None)
    kept = [batch.body is not None for batch in taken]
    assert kept == [True] * outbox._BODIES_IN_MEMORY + [False] * (12 - outbox._BODIES_IN_MEMORY)
