"""Local usage counts (SPEC §8): what every ``score`` run and first verdict adds, and only that."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from scoring_engine.conversation import Conversation, Message
from scoring_engine.home import EngineHome
from scoring_engine.localdb import connect
from scoring_engine.model.scorer import BATCH_MESSAGES, ConversationScore
from scoring_engine.review import Verdict
from scoring_engine.review.intake import ScoreRecorder
from scoring_engine.usage import (
    HISTOGRAM_BINS,
    ScoreTally,
    histogram_bin,
    record_tally,
    record_verdict,
)
from tests.scoring_engine.licensed import assert_fails, assert_ok
from tests.scoring_engine.review.conftest import grooming_chat, normal_chat, write_lines

BUNDLE = "reference-2026.11.0"


def _usage_rows(home) -> list[dict]:
    connection = sqlite3.connect(home / "local.sqlite3")
    connection.row_factory = sqlite3.Row
    try:
        rows = connection.execute("SELECT * FROM usage_days ORDER BY day, bundle").fetchall()
    finally:
        connection.close()
    return [{**dict(r), "histogram": json.loads(r["histogram"])} for r in rows]


def _result(conversation_id: str, score: float, *, threshold: float = 0.5) -> ConversationScore:
    return ConversationScore(
        id=conversation_id,
        score=score,
        flagged=score >= threshold,
        threshold=threshold,
        characteristics={"secrecy": 0.5},
        evidence=[],
        first_flag_message=None,
        bundle=BUNDLE,
    )


def _conversation(conversation_id: str) -> Conversation:
    return Conversation(
        id=conversation_id,
        messages=(Message("u1", "this is our secret"), Message("u2", "ok")),
    )


@pytest.mark.parametrize(
    ("score", "expected"),
    [(0.0, 0), (0.0499, 0), (0.05, 1), (0.5, 10), (0.9999, 19), (1.0, 19), (-0.1, 0), (1.5, 19)],
)
def test_scores_fall_into_twenty_equal_bins(score, expected):
    assert HISTOGRAM_BINS == 20
    assert histogram_bin(score) == expected


def test_counts_are_added_per_day_and_bundle(tmp_path):
    home = EngineHome(tmp_path)
    tally = ScoreTally.of([_result("a", 0.1), _result("b", 0.9), _result("c", 0.95)])
    with connect(home) as connection:
        record_tally(connection, "2026-12-01", BUNDLE, tally)
        record_tally(connection, "2026-12-01", BUNDLE, tally)
        record_tally(connection, "2026-12-01", "other-1.0", tally)
        record_tally(connection, "2026-12-02", BUNDLE, ScoreTally())  # nothing: no row
        record_verdict(connection, "2026-12-01", BUNDLE, Verdict.GROOMING)
    other, first = _usage_rows(tmp_path)  # ordered by day, then bundle
    assert (first["day"], first["bundle"], first["scored"], first["flagged"]) == (
        "2026-12-01",
        BUNDLE,
        6,
        4,
    )
    assert first["histogram"][2] == 2
    assert first["histogram"][18] == 2
    assert first["histogram"][19] == 2
    assert sum(first["histogram"]) == 6
    assert (first["reviewed"], first["grooming"], first["not_grooming"]) == (1, 1, 0)
    assert (other["bundle"], other["scored"], other["reviewed"]) == ("other-1.0", 3, 0)


def test_an_unknown_verdict_is_never_a_column_name(tmp_path):
    with (
        connect(EngineHome(tmp_path)) as connection,
        pytest.raises(ValueError, match="not a valid Verdict"),
    ):
        record_verdict(connection, "2026-12-01", BUNDLE, "scored = 99, grooming")


def test_every_score_run_counts_usage_without_queueing(installed, tmp_path):
    chats = write_lines(
        tmp_path / "chats.jsonl",
        [normal_chat("n-1"), grooming_chat("g-1"), normal_chat("n-2"), "{broken"],
    )
    first = assert_ok(installed("score", chats))
    scores = [json.loads(line) for line in first.stdout.splitlines()]
    assert_ok(installed("score", chats, "--only-flagged"))

    (day,) = _usage_rows(installed.home)
    assert day["day"] == datetime.now(UTC).date().isoformat()
    assert day["bundle"] == BUNDLE
    assert day["scored"] == 2 * len(scores) == 6  # the broken line is not counted
    assert day["flagged"] == 2 * sum(s["flagged"] for s in scores)
    expected = [0] * HISTOGRAM_BINS
    for line in scores:
        expected[histogram_bin(line["score"])] += 2
    assert day["histogram"] == expected
    assert day["reviewed"] == 0
    # Counts, never text or ids.
    assert "n-1" not in json.dumps(day)


def test_a_strict_run_that_stops_counts_what_it_scored(installed, tmp_path):
    # More messages than one model batch, so a first batch is scored and written before the
    # bad record stops the run.
    batch = BATCH_MESSAGES // len(normal_chat("n")["messages"]) + 1
    chats = write_lines(
        tmp_path / "chats.jsonl", [*(normal_chat(f"n-{i}") for i in range(batch)), "{broken"]
    )
    result = installed("score", chats, "--strict")
    assert_fails(result, 2, f"chats.jsonl:{batch + 1}")
    written = len(result.stdout.splitlines())
    assert 0 < written < batch
    assert sum(r["scored"] for r in _usage_rows(installed.home)) == written


def test_a_run_across_midnight_counts_each_utc_day(tmp_path):
    moments = iter(
        [datetime(2026, 12, 1, 23, 59, 59, tzinfo=UTC)] * 2
        + [datetime(2026, 12, 2, 0, 0, 1, tzinfo=UTC)] * 10
    )
    recorder = ScoreRecorder(EngineHome(tmp_path), BUNDLE, clock=lambda: next(moments))
    for index, score in enumerate([0.1, 0.9, 0.2]):
        recorder(_conversation(f"c{index}"), _result(f"c{index}", score))
    recorder.close()
    days = {r["day"]: (r["scored"], r["flagged"]) for r in _usage_rows(tmp_path)}
    assert days == {"2026-12-01": (2, 1), "2026-12-02": (1, 0)}


def test_flagged_conversations_are_written_in_chunks_with_the_counts(tmp_path):
    home = EngineHome(tmp_path)
    recorder = ScoreRecorder(home, BUNDLE, queue=True, chunk=2)
    for index, score in enumerate([0.9, 0.1, 0.8, 0.7]):
        recorder(_conversation(f"c{index}"), _result(f"c{index}", score))
    # Two flagged conversations filled a chunk: they and the counts so far are in the database.
    with connect(home) as connection:
        queued = [r[0] for r in connection.execute("SELECT conversation_id FROM review_items")]
    assert sorted(queued) == ["c0", "c2"]
    assert _usage_rows(tmp_path)[0]["scored"] == 3
    recorder.close()
    assert _usage_rows(tmp_path)[0]["scored"] == 4
    assert (recorder.counts.new, recorder.counts.updated) == (3, 0)
    recorder.close()  # closing twice adds nothing
    assert _usage_rows(tmp_path)[0]["scored"] == 4


def test_a_verdict_counts_on_the_day_it_is_given(queued_for_usage):
    engine, reference = queued_for_usage
    assert_ok(engine("review", "verdict", reference, "grooming"))
    assert_ok(engine("review", "verdict", reference, "imminent_threat"))
    (day,) = _usage_rows(engine.home)
    assert (day["reviewed"], day["grooming"], day["imminent_threat"]) == (1, 1, 0)


@pytest.fixture
def queued_for_usage(installed, tmp_path):
    chats = write_lines(tmp_path / "one.jsonl", [grooming_chat("g-1")])
    assert_ok(installed("score", chats, "--queue"))
    listed = json.loads(assert_ok(installed("review", "list", "--json")).stdout)
    return installed, listed[0]["id"][:8]


def test_old_days_stay_separate(tmp_path):
    home = EngineHome(tmp_path)
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    with connect(home) as connection:
        record_tally(connection, yesterday, BUNDLE, ScoreTally.of([_result("a", 0.3)]))
    recorder = ScoreRecorder(home, BUNDLE)
    recorder(_conversation("b"), _result("b", 0.3))
    recorder.close()
    assert [(r["day"], r["scored"]) for r in _usage_rows(tmp_path)] == [
        (yesterday, 1),
        (datetime.now(UTC).date().isoformat(), 1),
    ]


def test_a_run_the_license_or_bundle_refuses_counts_nothing(engine, portal, tmp_path):
    chats = write_lines(tmp_path / "chats.jsonl", [grooming_chat("g-1")])
    assert_ok(engine("init", "--root", portal.root_file(), "--license", portal.issue()))
    assert_fails(engine("score", chats, "--queue"), 4, "no bundle installed")
    assert not (engine.home / "local.sqlite3").exists()


def test_a_long_run_writes_its_counts_as_it_goes(tmp_path, monkeypatch):
    from scoring_engine.review import intake  # noqa: PLC0415

    monkeypatch.setattr(intake, "USAGE_CHUNK", 2)
    recorder = ScoreRecorder(EngineHome(tmp_path), BUNDLE)
    for index in range(3):
        recorder(_conversation(f"c{index}"), _result(f"c{index}", 0.2))
    assert _usage_rows(tmp_path)[0]["scored"] == 2  # written before the run ended
    recorder.close()
    assert _usage_rows(tmp_path)[0]["scored"] == 3
