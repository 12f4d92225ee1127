"""``vigil-engine outbox list|requeue|discard``: batches the portal refused, put back to be
queued afresh or dropped, and nothing else touched (``scoring_engine.refused``)."""

from __future__ import annotations

import json
import threading

from scoring_engine import refused
from scoring_engine.home import EngineHome
from scoring_engine.localdb import connect
from tests.scoring_engine.licensed import assert_fails, assert_ok
from tests.scoring_engine.report.conftest import BUNDLE, DAY, add_item, add_usage, outbox_rows


def _listed(engine):
    return json.loads(assert_ok(engine("outbox", "list", "--json")).stdout)


def _usage_day(engine):
    with connect(EngineHome(engine.home)) as connection:
        row = connection.execute(
            "SELECT scored, flagged, reviewed, grooming, histogram FROM usage_days"
            " WHERE day = ? AND bundle = ?",
            (DAY, BUNDLE),
        ).fetchone()
    return None if row is None else (*tuple(row)[:4], json.loads(row["histogram"]))


def test_refused_batches_are_listed_with_the_portals_answer(online, portal_server):
    assert "The outbox is empty" in assert_ok(online("outbox", "list")).stdout
    add_usage(online.home)
    add_item(online.home)
    portal_server.report_faults.refuse = 1  # the first batch (usage) only

    assert_fails(online("report"), 1, "the portal refused 1 batch")

    (usage,) = _listed(online)
    assert (usage["kind"], usage["records"], usage["attempts"]) == ("usage", 1, 1)
    assert usage["refused_status"] == 422
    assert "invalid_batch" in usage["last_error"]
    table = assert_ok(online("outbox", "list")).stdout
    assert usage["batch_id"] in table
    assert "│ 422 " in table
    assert f"{usage['batch_id']}: {usage['last_error']}" in table.replace("\n", " ")
    assert "outbox requeue ID" in table
    status = json.loads(assert_ok(online("status", "--json")).stdout)
    assert (status["pending_reports"], status["refused_reports"]) == (1, 1)
    assert "1 refused by the portal" in assert_ok(online("status")).stdout


def test_requeued_batches_go_again_in_new_batches_and_count_once(online, portal_server):
    add_usage(online.home, scored=120)
    before = _usage_day(online)
    first = add_item(online.home, verdict="grooming")
    second = add_item(online.home, verdict="not_grooming")
    portal_server.report_faults.refuse = 2  # both batches
    assert_fails(online("report"), 1, "the portal refused 2 batches")
    assert _usage_day(online) is None  # its counts are in the refused batch
    usage, feedback = _listed(online)

    done = assert_ok(online("outbox", "requeue", feedback["batch_id"]))
    assert "2 reviewed items to be queued again" in done.stdout
    done = assert_ok(online("outbox", "requeue", usage["batch_id"]))
    assert "the counts of 1 day added back" in done.stdout
    assert _listed(online) == []
    assert _usage_day(online) == before

    summary = json.loads(assert_ok(online("report", "--json")).stdout)

    assert (summary["queued"]["usage_records"], summary["queued"]["feedback_records"]) == (1, 2)
    assert summary["batches_sent"] == 2
    sent_ids = {row["batch_id"] for row in outbox_rows(online.home)}
    assert not sent_ids & {usage["batch_id"], feedback["batch_id"]}  # new batch ids
    assert {r["feedback_id"].replace("-", "") for r in portal_server.feedback.values()} == {
        first,
        second,
    }
    assert sum(day["scored"] for day in portal_server.usage_totals.values()) == 120
    assert online("report").stdout.startswith("Nothing to report")


def test_only_refused_batches_are_requeued_or_discarded(online, portal_server, delays):
    add_item(online.home)
    portal_server.report_faults.unavailable = 100  # the portal is out: the batch waits
    assert_fails(online("report"), 5, "kept in the outbox")
    (waiting,) = _listed(online)
    assert waiting["refused_status"] is None
    assert waiting["last_error"]

    for command in (("requeue",), ("discard", "--yes")):
        refused = online("outbox", *command, waiting["batch_id"])
        assert_fails(refused, 2, "the portal has not refused batch")
    assert_fails(online("outbox", "requeue", "no-such-batch"), 2, "no batch 'no-such-batch'")
    portal_server.report_faults.unavailable = 0
    assert_ok(online("report"))
    assert_fails(online("outbox", "requeue", waiting["batch_id"]), 2, "was accepted by the portal")


def test_a_conflict_is_not_requeued_and_a_damaged_record_is_named(online, portal_server):
    add_usage(online.home)
    add_item(online.home)
    portal_server.report_faults.refuse = 1
    portal_server.report_faults.refuse_status = 409
    assert_fails(online("report"), 1, "the portal refused 1 batch")
    (conflict,) = _listed(online)
    assert_fails(online("outbox", "requeue", conflict["batch_id"]), 2, "may have counted it")
    assert _listed(online) == [conflict]  # kept as it was

    with connect(EngineHome(online.home)) as connection:
        connection.execute(
            "UPDATE outbox SET payload = replace(payload, '\"flagged\":', '\"flagged\":-')"
            ", refused_status = 422 WHERE batch_id = ?",
            (conflict["batch_id"],),
        )
    damaged = online("outbox", "requeue", conflict["batch_id"])
    assert_fails(damaged, 2, "record 0: flagged is not a count")
    assert f"outbox discard {conflict['batch_id']}" in damaged.stderr
    assert _usage_day(online) is None  # nothing was added back


def test_a_discarded_batch_is_gone_and_asked_for_first(online, portal_server):
    add_usage(online.home)
    with connect(EngineHome(online.home)) as connection:
        connection.execute("UPDATE usage_days SET scored = -5")  # the portal refuses it
    assert_fails(online("report"), 1, "the portal refused 1 batch")
    (refused,) = _listed(online)

    asked = online("outbox", "discard", refused["batch_id"], input="n\n")
    assert_fails(asked, 2, "nothing discarded")
    assert _listed(online) == [refused]
    done = assert_ok(online("outbox", "discard", refused["batch_id"], input="y\n"))
    assert f"Discarded usage batch {refused['batch_id']} (1 record, never reported)" in done.stdout

    assert _listed(online) == []
    assert outbox_rows(online.home) == []
    assert online("report").stdout.startswith("Nothing to report")


def test_a_batch_is_not_put_back_while_a_report_runs(online, portal_server):
    add_item(online.home)
    portal_server.report_faults.refuse = 1
    assert_fails(online("report"), 1, "the portal refused 1 batch")
    (batch,) = _listed(online)
    home = EngineHome(online.home)
    done = threading.Event()

    def requeue() -> None:
        refused.requeue(home, batch["batch_id"])
        done.set()

    with home.report_lock():  # as `report` holds it for its run
        waiting = threading.Thread(target=requeue)
        waiting.start()
        assert not done.wait(0.3)
        assert _listed(online) == [batch]
    waiting.join(timeout=10)
    assert done.is_set()
    assert _listed(online) == []
