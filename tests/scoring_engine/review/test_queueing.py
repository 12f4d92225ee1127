"""``vigil-engine score --queue``: what goes into the review queue, and what is kept."""

from __future__ import annotations

import json
import stat

import numpy as np

from scoring_engine.conversation import Conversation, Message
from scoring_engine.model.features import featurize
from scoring_engine.model.vectors import FeatureVector
from tests.scoring_engine.licensed import assert_ok
from tests.scoring_engine.review.conftest import (
    execute,
    grooming_chat,
    item_id,
    items,
    normal_chat,
    rows,
    score_lines,
    write_lines,
)


def test_only_flagged_conversations_are_queued_with_text_score_line_and_features(queued):
    listed = items(queued)
    assert sorted(i["conversation_id"] for i in listed) == ["g-1", "g-2"]
    assert all(i["verdict"] is None and i["bundle"] == "reference-2026.11.0" for i in listed)
    assert listed[0]["score"] >= listed[1]["score"]  # highest score first

    (row,) = rows(queued, "SELECT * FROM review_items WHERE conversation_id = 'g-1'")
    stored = json.loads(row["conversation"])
    chat = grooming_chat("g-1")
    assert [m["text"] for m in stored["messages"]] == [m["text"] for m in chat["messages"]]
    assert stored["participants"] == chat["participants"]
    score_line = json.loads(row["score_line"])
    assert score_line["id"] == "g-1"
    assert score_line["flagged"] is True
    assert "text" not in row["score_line"]  # the score line holds indices, never text

    # The stored vector is exactly the model's input for the conversation.
    conversation = Conversation(
        id="g-1",
        messages=tuple(Message(m["author"], m["text"], m["ts"]) for m in chat["messages"]),
        participants=chat["participants"],
    )
    expected = featurize([conversation]).features()[0]
    decoded = FeatureVector.from_dict(json.loads(row["features"])).to_row()
    assert np.abs((decoded - expected).toarray()).max() < 1e-6


def test_the_summary_says_how_many_were_queued(installed, chats):
    first = assert_ok(installed("score", chats, "--queue"))
    assert "review queue: 2 flagged conversations queued (2 new, 0 updated)" in first.stderr
    again = assert_ok(installed("score", chats, "--queue"))
    assert "review queue: 2 flagged conversations queued (0 new, 2 updated)" in again.stderr
    assert len(items(installed)) == 2


def test_without_queue_nothing_is_queued(installed, chats):
    result = assert_ok(installed("score", chats))
    assert "review queue" not in result.stderr
    assert rows(installed, "SELECT count(*) AS n FROM review_items")[0]["n"] == 0


def test_requeue_refreshes_a_pending_item_and_keeps_a_reviewed_one(queued, tmp_path):
    ids = {c: item_id(queued, c) for c in ("g-1", "g-2")}
    before = {r["conversation_id"]: r for r in rows(queued, "SELECT * FROM review_items")}
    assert_ok(queued("review", "verdict", ids["g-1"], "grooming"))

    # g-1 exactly as the moderator read it, g-2 with a new message.
    newer = write_lines(
        tmp_path / "newer.jsonl", [grooming_chat("g-1"), grooming_chat("g-2", extra="one more")]
    )
    result = assert_ok(queued("score", newer, "--queue"))
    assert "(0 new, 1 updated); 1 already reviewed, left as they are" in result.stderr

    after = {r["conversation_id"]: r for r in rows(queued, "SELECT * FROM review_items")}
    assert {c: after[c]["item_id"][:8] for c in after} == ids  # same items, no duplicates
    assert after["g-1"]["verdict"] == "grooming"
    assert after["g-1"]["conversation"] == before["g-1"]["conversation"]
    assert "one more" in after["g-2"]["conversation"]  # the newest text, for the moderator
    assert after["g-2"]["queued_at"] == before["g-2"]["queued_at"]  # waiting since then


def test_a_reviewed_conversation_that_grew_is_reopened_for_review(queued, tmp_path):
    reference = item_id(queued, "g-1")
    assert_ok(queued("review", "verdict", reference, "not_grooming", "--moderator", "ana"))
    grown = write_lines(tmp_path / "grown.jsonl", [grooming_chat("g-1", extra="meet me tonight")])
    result = assert_ok(queued("score", grown, "--queue"))
    assert "(0 new, 0 updated, 1 reopened with new messages)" in result.stderr

    (row,) = rows(queued, "SELECT * FROM review_items WHERE conversation_id = 'g-1'")
    assert row["item_id"].startswith(reference)  # the same item, so the same feedback id
    assert row["verdict"] is None
    assert "meet me tonight" in row["conversation"]
    assert "1 new message since the verdict not_grooming by ana" in row["note"]
    assert "g-1" in {i["conversation_id"] for i in items(queued)}  # pending again

    # Its next verdict is a new review of what the moderator has not read before.
    assert_ok(queued("review", "verdict", reference, "imminent_threat"))
    (day,) = rows(queued, "SELECT * FROM usage_days")
    assert (day["reviewed"], day["not_grooming"], day["imminent_threat"]) == (2, 1, 1)


def test_bad_input_lines_are_reported_and_the_valid_ones_still_queued(installed, tmp_path):
    chats = write_lines(
        tmp_path / "mixed.jsonl",
        [
            grooming_chat("g-1"),
            "{not json",
            {"id": "no-messages"},
            normal_chat("n-1"),
            {"id": "bad-message", "messages": [{"author": "u1"}]},
            grooming_chat("g-2"),
        ],
    )
    result = assert_ok(installed("score", chats, "--queue"))
    assert [line["id"] for line in score_lines(result)] == ["g-1", "n-1", "g-2"]
    assert f"{chats}:2:" in result.stderr
    assert f"{chats}:3: messages" in result.stderr
    assert f"{chats}:5:" in result.stderr
    assert "3 rejected" in result.stderr
    assert "(2 new, 0 updated)" in result.stderr
    assert sorted(i["conversation_id"] for i in items(installed)) == ["g-1", "g-2"]


def test_the_queue_database_is_readable_by_its_owner_only(queued):
    database = queued.home / "local.sqlite3"
    assert stat.S_IMODE(database.stat().st_mode) == 0o600
    for companion in (queued.home / "local.sqlite3-wal", queued.home / "local.sqlite3-shm"):
        if companion.exists():
            assert stat.S_IMODE(companion.stat().st_mode) == 0o600


def test_a_lone_surrogate_in_the_text_is_queued_not_a_crash(installed, tmp_path, wide):
    chat = grooming_chat("g-odd")
    chat["messages"][0]["text"] = "hi \ud800 there"
    path = tmp_path / "odd.jsonl"
    path.write_text(json.dumps(chat) + "\n", encoding="ascii")  # "\\ud800" escaped
    assert_ok(installed("score", path, "--queue"))
    shown = assert_ok(installed("review", "show", item_id(installed, "g-odd")))
    assert "hi \ufffd there" in shown.stdout


def test_status_shows_the_review_queue(queued):
    status = json.loads(assert_ok(queued("status", "--json")).stdout)
    assert status["review_queue"] == {"pending": 2, "reviewed": 0}
    assert_ok(queued("review", "verdict", item_id(queued, "g-1"), "not_grooming"))
    status = json.loads(assert_ok(queued("status", "--json")).stdout)
    assert status["review_queue"] == {"pending": 1, "reviewed": 1}
    assert "1 pending, 1 reviewed" in assert_ok(queued("status")).stdout


def test_status_before_any_scoring_shows_an_empty_queue_without_making_the_database(installed):
    status = json.loads(assert_ok(installed("status", "--json")).stdout)
    assert status["review_queue"] == {"pending": 0, "reviewed": 0}
    assert not (installed.home / "local.sqlite3").exists()


def test_feedback_is_pending_again_after_a_corrected_verdict(queued):
    reference = item_id(queued, "g-1")
    assert_ok(queued("review", "verdict", reference, "grooming"))
    # As `report` leaves it: the feedback is in the outbox.
    execute(
        queued,
        "INSERT INTO feedback_queued (seq, queued_at) SELECT seq,"
        " '2026-12-01T00:00:00Z' FROM review_items WHERE conversation_id = 'g-1'",
    )
    assert_ok(queued("review", "verdict", reference, "imminent_threat"))
    (row,) = rows(queued, "SELECT * FROM review_items WHERE conversation_id = 'g-1'")
    assert row["verdict"] == "imminent_threat"
    assert rows(queued, "SELECT * FROM feedback_queued") == []


def test_each_queued_text_is_its_own_conversation_across_model_batches(installed, tmp_path):
    from scoring_engine.model.scorer import BATCH_MESSAGES  # noqa: PLC0415

    per_batch = BATCH_MESSAGES // len(normal_chat("n")["messages"])
    records = [normal_chat(f"n-{i}") for i in range(per_batch + 50)]
    for position in (10, per_batch - 1, per_batch, per_batch + 20):
        records.insert(position, grooming_chat(f"g-at-{position}", extra=f"marker {position}"))
    chats = write_lines(tmp_path / "many.jsonl", records)
    assert_ok(installed("score", chats, "--queue"))

    queued = rows(installed, "SELECT conversation_id, score_line, conversation FROM review_items")
    assert len(queued) == 4
    for row in queued:
        position = row["conversation_id"].removeprefix("g-at-")
        assert json.loads(row["score_line"])["id"] == row["conversation_id"]
        assert f"marker {position}" in json.loads(row["conversation"])["messages"][-1]["text"]
