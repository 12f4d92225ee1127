"""``vigil-engine review list|show|verdict|purge`` as a moderator uses them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from scoring_engine.cli import review as review_cli
from tests.scoring_engine.licensed import assert_fails, assert_ok
from tests.scoring_engine.review.conftest import execute, item_id, items, rows

VERDICTS = "not_grooming, grooming, imminent_threat"


def _usage(engine):
    return [dict(r) for r in rows(engine, "SELECT * FROM usage_days")]


def _back_date_review(engine, conversation_id, days):
    moment = datetime.now(UTC) - timedelta(days=days)
    execute(
        engine,
        "UPDATE review_items SET reviewed_at = ? WHERE conversation_id = ?",
        moment.isoformat(timespec="seconds").replace("+00:00", "Z"),
        conversation_id,
    )


#### list ####


def test_list_shows_pending_items_and_all_with_the_flag(queued, wide):
    table = assert_ok(queued("review", "list")).stdout
    for listed in items(queued):
        assert listed["id"][:8] in table
        assert f"{listed['score']:.3f}" in table
        assert listed["top_characteristics"][0] in table
    assert "pending" in table

    assert_ok(queued("review", "verdict", item_id(queued, "g-1"), "grooming"))
    assert [i["conversation_id"] for i in items(queued)] == ["g-2"]
    everything = {i["conversation_id"]: i for i in items(queued, "--all")}
    assert everything["g-1"]["verdict"] == "grooming"
    assert everything["g-2"]["verdict"] is None
    assert "grooming" in assert_ok(queued("review", "list", "--all")).stdout


def test_list_json_never_holds_the_text(queued):
    listing = assert_ok(queued("review", "list", "--json", "--all")).stdout
    assert "dont tell your mom" not in listing
    assert {"id", "score", "threshold", "bundle", "queued_at", "verdict"} <= set(
        json.loads(listing)[0]
    )


def test_an_empty_queue_says_so(installed):
    assert "No conversations wait for review." in assert_ok(installed("review", "list")).stdout
    assert json.loads(assert_ok(installed("review", "list", "--json")).stdout) == []


def test_review_in_an_uninitialised_home_says_to_run_init(engine):
    assert_fails(engine("review", "list"), 3, "run `vigil-engine init")


#### show ####


def test_show_renders_participants_messages_evidence_ratings_and_score(queued, wide):
    shown = assert_ok(queued("review", "show", item_id(queued, "g-1"))).stdout
    (row,) = rows(queued, "SELECT score_line FROM review_items WHERE conversation_id = 'g-1'")
    line = json.loads(row["score_line"])
    assert "g-1" in shown
    assert "reference-2026.11.0" in shown
    assert f"{line['score']:.3f}" in shown
    assert "threshold 0.500" in shown
    assert "declared_age: 13" in shown  # participants
    assert "2026-11-30T20:04:00Z" in shown  # message times
    assert "dont tell your mom we talk" in shown
    # Evidence messages are marked and name their characteristic.
    lines = shown.splitlines()
    evidence = {e["message"] for e in line["evidence"]}
    for index in evidence:
        (marked,) = [text for text in lines if f"▶ {index} " in text]
        names = [e["characteristic"] for e in line["evidence"] if e["message"] == index]
        assert names[0] in marked
    unmarked = set(range(13)) - evidence
    assert 0 in unmarked  # the opening line about a film is no evidence, and is not marked
    assert not any(f"▶ {index} " in text for text in lines for index in unmarked)
    # Characteristic ratings as bars.
    secrecy = next(text for text in lines if " secrecy " in text and "█" in text)
    assert f"{line['characteristics']['secrecy']:.2f}" in secrecy
    assert "Record a verdict" in shown


def test_show_does_not_read_chat_text_as_markup(installed, tmp_path, wide):
    from tests.scoring_engine.review.conftest import grooming_chat, write_lines  # noqa: PLC0415

    chat = grooming_chat("g-markup")
    chat["messages"][0]["text"] = "[bold red]hello[/] [link=http://x]y[/link]"
    assert_ok(installed("score", write_lines(tmp_path / "m.jsonl", [chat]), "--queue"))
    shown = assert_ok(installed("review", "show", item_id(installed, "g-markup"))).stdout
    assert "[bold red]hello[/] [link=http://x]y[/link]" in shown


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("ffffffffff", "no review item ffffffffff"),
        ("abc", "at least its first 6 characters"),
        ("g-1 or so", "at least its first 6 characters"),
    ],
)
def test_an_unknown_item_id_exits_2(queued, reference, message):
    assert_fails(queued("review", "show", reference), 2, message)
    assert_fails(queued("review", "verdict", reference, "grooming"), 2, message)


def test_an_ambiguous_id_prefix_exits_2(queued):
    execute(queued, "UPDATE review_items SET item_id = 'abcdef01' WHERE conversation_id = 'g-1'")
    execute(queued, "UPDATE review_items SET item_id = 'abcdef02' WHERE conversation_id = 'g-2'")
    assert_fails(queued("review", "show", "abcdef"), 2, "ambiguous")
    assert "g-2" in assert_ok(queued("review", "show", "abcdef02")).stdout


#### verdict ####


def test_a_verdict_is_recorded_and_counted_once(queued):
    reference = item_id(queued, "g-1")
    first = assert_ok(
        queued("review", "verdict", reference, "grooming", "--note", "clear", "--moderator", "ana")
    )
    assert f"Recorded grooming for review item {reference} by ana." in first.stdout
    corrected = assert_ok(queued("review", "verdict", reference, "not_grooming"))
    assert "It replaces grooming; usage counts the item's first verdict only." in corrected.stdout

    (row,) = rows(queued, "SELECT * FROM review_items WHERE conversation_id = 'g-1'")
    assert row["verdict"] == "not_grooming"
    assert row["reviewed_at"] is not None
    (day,) = _usage(queued)
    assert (day["reviewed"], day["grooming"], day["not_grooming"], day["imminent_threat"]) == (
        1,
        1,
        0,
        0,
    )

    assert_ok(queued("review", "verdict", item_id(queued, "g-2"), "IMMINENT_THREAT"))
    (day,) = _usage(queued)
    assert (day["reviewed"], day["imminent_threat"]) == (2, 1)


def test_an_unknown_verdict_exits_2_naming_the_allowed_ones(queued):
    reference = item_id(queued, "g-1")
    assert_fails(queued("review", "verdict", reference, "maybe"), 2, f"choose one of {VERDICTS}")
    assert all(i["verdict"] is None for i in items(queued, "--all"))
    assert sum(d["reviewed"] for d in _usage(queued)) == 0


def test_the_moderator_is_the_option_then_the_config_then_the_os_user(queued, monkeypatch):
    monkeypatch.setattr(review_cli.getpass, "getuser", lambda: "os-user")
    reference = item_id(queued, "g-1")

    def moderator() -> str:
        (row,) = rows(queued, "SELECT moderator FROM review_items WHERE conversation_id = 'g-1'")
        return row["moderator"]

    assert_ok(queued("review", "verdict", reference, "grooming"))
    assert moderator() == "os-user"
    (queued.home / "config.json").write_text(json.dumps({"moderator": "trust-and-safety"}))
    assert_ok(queued("review", "verdict", reference, "grooming"))
    assert moderator() == "trust-and-safety"
    assert_ok(queued("review", "verdict", reference, "grooming", "--moderator", "ben"))
    assert moderator() == "ben"


def test_share_text_is_recorded_per_verdict(queued):
    reference = item_id(queued, "g-1")
    shared = assert_ok(queued("review", "verdict", reference, "grooming", "--share-text"))
    assert "only if your organisation enabled text sharing in the portal" in shared.stdout
    shares = {i["conversation_id"]: i["share_text"] for i in items(queued, "--all")}
    assert shares == {"g-1": True, "g-2": False}
    # A new verdict without the flag withdraws the confirmation.
    assert_ok(queued("review", "verdict", reference, "grooming"))
    (row,) = rows(queued, "SELECT share_text FROM review_items WHERE conversation_id = 'g-1'")
    assert row["share_text"] == 0


#### purge ####


def test_purge_deletes_old_text_but_keeps_verdict_score_and_features(queued, wide):
    assert_ok(queued("review", "verdict", item_id(queued, "g-1"), "grooming"))
    assert_ok(queued("review", "verdict", item_id(queued, "g-2"), "grooming"))
    _back_date_review(queued, "g-1", days=91)
    before = {r["conversation_id"]: dict(r) for r in rows(queued, "SELECT * FROM review_items")}

    purged = assert_ok(queued("review", "purge")).stdout
    assert "Deleted the text of 1 reviewed conversation older than 90 days" in purged

    after = {r["conversation_id"]: dict(r) for r in rows(queued, "SELECT * FROM review_items")}
    assert after["g-1"]["conversation"] is None
    assert after["g-1"]["text_deleted_at"] is not None
    for kept in ("verdict", "score", "score_line", "features", "moderator", "reviewed_at"):
        assert after["g-1"][kept] == before["g-1"][kept]
    assert after["g-2"] == before["g-2"]  # reviewed within the retention period

    shown = assert_ok(queued("review", "show", item_id(queued, "g-1"))).stdout
    assert "The text was deleted" in shown
    assert "dont tell your mom" not in shown
    assert "0 reviewed conversations" in assert_ok(queued("review", "purge")).stdout


def test_retention_applies_at_the_start_of_review_commands_and_score_queue(queued, chats):
    (queued.home / "config.json").write_text(json.dumps({"review_retention_days": 7}))
    assert_ok(queued("review", "verdict", item_id(queued, "g-1"), "not_grooming"))
    _back_date_review(queued, "g-1", days=8)
    # Pending items keep their text whatever their age: no moderator has read them yet.
    execute(queued, "UPDATE review_items SET queued_at = '2020-01-01T00:00:00Z'")
    assert_ok(queued("review", "list"))
    deleted = rows(queued, "SELECT conversation_id FROM review_items WHERE conversation IS NULL")
    assert [r["conversation_id"] for r in deleted] == ["g-1"]

    assert_ok(queued("review", "verdict", item_id(queued, "g-2"), "grooming"))
    _back_date_review(queued, "g-2", days=8)
    assert_ok(queued("score", chats, "--queue"))
    deleted = rows(queued, "SELECT conversation_id FROM review_items WHERE conversation IS NULL")
    assert sorted(r["conversation_id"] for r in deleted) == ["g-1", "g-2"]


def test_sharing_deleted_text_is_refused(queued):
    reference = item_id(queued, "g-1")
    assert_ok(queued("review", "verdict", reference, "grooming"))
    _back_date_review(queued, "g-1", days=100)
    assert_fails(
        queued("review", "verdict", reference, "grooming", "--share-text"),
        2,
        "no text to share",
    )


def test_a_bad_retention_setting_exits_2(queued):
    (queued.home / "config.json").write_text(json.dumps({"review_retention_days": -1}))
    assert_fails(queued("review", "list"), 2, "review_retention_days must be a number")
