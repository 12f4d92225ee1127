"""``vigil-engine report`` against the portal's report routes over HTTP (docs/feedback.md).

Each test asserts what the adopter sees (exit code, the one error line, the summary) and
what the portal received: the HTTP bodies themselves, gzip-decoded, searched byte for
byte for the synthetic message texts the local queue holds.
"""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta

from scoring_engine.home import EngineHome
from scoring_engine.localdb import connect
from scoring_engine.outbox import SEND_CONCURRENCY
from scoring_engine.remote import LEASE_HEADER
from tests.scoring_engine.licensed import assert_fails, assert_ok
from tests.scoring_engine.report.conftest import (
    BUNDLE,
    DAY,
    add_item,
    add_usage,
    outbox_rows,
)

MARKER_A = "synthetic-secret-alpha meet me after school"
MARKER_B = "synthetic-secret-bravo delete this chat"
MARKER_C = "synthetic-secret-charlie do not tell your mum"
USAGE = "/api/v1/usage"
FEEDBACK = "/api/v1/feedback"


def _report(engine, *args):
    return engine("report", *args)


def _summary(engine):
    return json.loads(assert_ok(_report(engine, "--json")).stdout)


def _posts(server, path=None):
    return [
        r for r in server.report_requests if r.method == "POST" and (path is None or r.path == path)
    ]


def _all_bytes(server):
    return b"\n".join(r.body for r in server.report_requests)


def _status_pending(engine):
    return json.loads(assert_ok(engine("status", "--json")).stdout)["pending_reports"]


#### What is sent ####


def test_usage_and_feedback_reach_the_portal_with_license_and_lease(online, portal_server):
    add_usage(online.home, scored=120)
    reviewed = add_item(online.home, texts=[MARKER_A], verdict="grooming")
    shared = add_item(online.home, texts=[MARKER_B], verdict="not_grooming", share_text=True)
    add_item(online.home, texts=[MARKER_C], verdict=None)  # not reviewed: stays local
    assert _status_pending(online) == 3  # one usage row, two reviewed items

    summary = _summary(online)

    assert summary["queued"]["usage_records"] == 1
    assert summary["queued"]["feedback_records"] == 2
    assert (summary["batches_sent"], summary["batches_failed"]) == (2, 0)
    assert summary["records_sent"] == 3
    assert summary["policy"] == {
        "fetched": True,
        "text_sharing": False,
        "max_records": 1000,
        "max_body_bytes": 8 * 1024 * 1024,
    }
    lease = (online.home / "trust" / "lease.jwt").read_text().strip()
    token = (online.home / "trust" / "license.jwt").read_text().strip()
    for request in portal_server.report_requests:
        assert request.headers["Authorization"] == f"Bearer {token}"
        assert request.headers[LEASE_HEADER] == lease
        assert request.status in {200, 201}
    for request in _posts(portal_server):
        assert request.headers["Content-Type"] == "application/json"
        # Gzipped only where it pays: not these small bodies, nor base64 of zlib vectors.
        assert "Content-Encoding" not in request.headers
        assert int(request.headers["Content-Length"]) == len(request.body)

    engine_id = json.loads((online.home / "engine.json").read_text())["engine_id"]
    license_id = "lic-0001"
    totals = portal_server.usage_totals[(license_id, engine_id, DAY, BUNDLE)]
    assert (totals["scored"], totals["flagged"], totals["reviewed"]) == (120, 3, 1)
    assert totals["verdicts"] == {"not_grooming": 0, "grooming": 1, "imminent_threat": 0}
    assert sum(totals["score_histogram"]) == 120

    received = portal_server.feedback
    assert set(received) == {
        (license_id, str(uuid.UUID(reviewed))),
        (license_id, str(uuid.UUID(shared))),
    }
    record = next(r for (_, fid), r in received.items() if fid.replace("-", "") == reviewed)
    assert record["verdict"] == "grooming"
    assert record["bundle"] == BUNDLE
    assert (record["score"], record["threshold"]) == (0.93, 0.5)
    assert record["characteristics"]["secrecy"] == 0.6
    assert record["reviewed_at"] == "2026-12-02T10:00:00Z"
    assert record["features"]["encoding"] == "zlib+le-int32-float32"
    assert record["text"] is None
    assert set(record) == {
        "feedback_id", "bundle", "score", "threshold", "characteristics", "verdict",
        "reviewed_at", "features", "text",
    }  # fmt: skip
    # Sharing is off: not one byte of any message, conversation id or participant left.
    wire = _all_bytes(portal_server)
    for secret in (MARKER_A, MARKER_B, MARKER_C, "synthetic-secret", "declared_age", "conv-"):
        assert secret.encode() not in wire
    assert _status_pending(online) == 0


def test_text_is_sent_only_with_sharing_on_and_the_moderators_confirmation(online, portal_server):
    portal_server.report_policy["text_sharing"] = True
    confirmed = add_item(online.home, texts=[MARKER_A, "second line"], share_text=True)
    add_item(online.home, texts=[MARKER_B], share_text=False)
    add_item(online.home, texts=[MARKER_C], share_text=True, text_deleted=True)
    # Reviewed long ago: past the 90-day retention, its text is purged before queuing.
    add_item(
        online.home, texts=["synthetic-secret-delta"], share_text=True,
        reviewed_at="2020-01-01T00:00:00Z",
    )  # fmt: skip

    summary = _summary(online)

    assert summary["queued"]["feedback_with_text"] == 1
    texts = {fid.replace("-", ""): r["text"] for (_, fid), r in portal_server.feedback.items()}
    assert texts[confirmed] == {
        "messages": [{"author": "u1", "text": MARKER_A}, {"author": "u2", "text": "second line"}]
    }
    assert sum(text is not None for text in texts.values()) == 1
    wire = _all_bytes(portal_server)
    assert MARKER_A.encode() in wire
    for secret in (MARKER_B, MARKER_C, "synthetic-secret-delta", "declared_age", "2026-12-01T09"):
        assert secret.encode() not in wire
    with connect(EngineHome(online.home)) as connection:
        purged = connection.execute(
            "SELECT COUNT(*) FROM review_items WHERE text_deleted_at IS NOT NULL"
        ).fetchone()[0]
    assert purged == 2


def test_without_the_policy_no_text_is_sent_even_if_the_portal_allows_it(online, portal_server):
    portal_server.report_policy["text_sharing"] = True
    portal_server.report_faults.policy_unavailable = True
    add_item(online.home, texts=[MARKER_A], share_text=True)

    result = assert_ok(_report(online))

    assert "Portal policy: not available; feedback sent without text." in result.stdout
    assert [r["text"] for r in portal_server.feedback.values()] == [None]
    assert MARKER_A.encode() not in _all_bytes(portal_server)


def test_sharing_turned_off_after_queuing_sends_the_same_batch_without_text(online, portal_server):
    portal_server.report_policy["text_sharing"] = True

    def organisation_turns_sharing_off(handler):
        if handler.path == FEEDBACK:
            portal_server.report_policy["text_sharing"] = False

    portal_server.on_request = organisation_turns_sharing_off
    add_item(online.home, texts=[MARKER_A], share_text=True)

    assert_ok(_report(online))

    first, second = (json.loads(r.body) for r in _posts(portal_server, FEEDBACK))
    assert [r.status for r in _posts(portal_server, FEEDBACK)] == [403, 201]
    assert first["batch_id"] == second["batch_id"]
    assert first["records"][0]["text"] is not None
    assert second["records"][0]["text"] is None
    assert [r["text"] for r in portal_server.feedback.values()] == [None]
    (row,) = outbox_rows(online.home)
    assert MARKER_A not in row["payload"]


def test_records_are_split_into_batches_of_the_policys_size(online, portal_server):
    portal_server.report_policy["max_records"] = 2
    for i in range(5):
        add_item(online.home, texts=[f"text {i}"])

    summary = _summary(online)

    assert summary["batches_sent"] == 3
    assert [row["records"] for row in outbox_rows(online.home)] == [2, 2, 1]
    # Sent a few at once: they may arrive in any order.
    assert sorted(len(body["records"]) for body in portal_server.report_bodies(FEEDBACK)) == [
        1,
        2,
        2,
    ]
    assert len(portal_server.feedback) == 5


def test_after_the_first_batch_a_few_are_sent_at_once(online, portal_server):
    portal_server.report_policy["max_records"] = 1
    for i in range(9):
        add_item(online.home, texts=[f"text {i}"])
    lock = threading.Lock()
    in_flight = [0]
    most = [0]
    overlapped = threading.Event()

    def slow_feedback(handler):
        if handler.path != FEEDBACK:
            return
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
            if in_flight[0] > 1:
                overlapped.set()
        overlapped.wait(timeout=0.5)  # the first batch goes alone: it waits in vain
        with lock:
            in_flight[0] -= 1

    portal_server.on_request = slow_feedback

    summary = _summary(online)

    assert (summary["batches_sent"], summary["records_sent"]) == (9, 9)
    assert 1 < most[0] <= SEND_CONCURRENCY
    assert len(portal_server.feedback) == 9
    assert all(row["sent_at"] for row in outbox_rows(online.home))


def test_an_outage_after_the_first_batch_keeps_the_rest(online, portal_server, delays):
    portal_server.report_policy["max_records"] = 1
    for i in range(6):
        add_item(online.home, texts=[f"text {i}"])

    def down_after_the_first(handler):
        if handler.path == FEEDBACK and len(_posts(portal_server, FEEDBACK)) == 1:
            portal_server.report_faults.unavailable = 1000

    portal_server.on_request = down_after_the_first

    down = _report(online)

    assert_fails(down, 5, "5 batches (5 records) kept in the outbox")
    rows = outbox_rows(online.home)
    assert [row["sent_at"] is not None for row in rows] == [True] + [False] * 5
    # Those in flight are retried (boundedly), but no batch is started once one stopped.
    tried = [row["attempts"] for row in rows[1:]]
    assert max(tried) == 4
    assert 1 <= sum(1 for attempts in tried if attempts) <= SEND_CONCURRENCY


#### Repeating and failing ####


def test_repeating_report_sends_nothing_twice(online, portal_server):
    add_usage(online.home)
    add_item(online.home)
    assert_ok(_report(online))
    again = _summary(online)
    assert again["queued"]["batches"] == 0
    assert again["batches_sent"] == 0
    assert len(_posts(portal_server)) == 2


def test_an_outage_keeps_every_batch_and_the_next_report_sends_them_once(
    online, portal_server, delays
):
    add_usage(online.home, scored=50)
    add_item(online.home)
    add_item(online.home)
    portal_server.stop()

    down = _report(online)

    assert_fails(down, 5, "unreachable")
    assert "2 batches (3 records) kept in the outbox" in down.stderr
    assert "run `vigil-engine report` again" in down.stderr
    assert "Queued: 1 usage record, 2 feedback records (0 with text) in 2 batches." in down.stdout
    rows = outbox_rows(online.home)
    assert [r["sent_at"] for r in rows] == [None, None]
    assert rows[0]["attempts"] == 4
    assert "cannot connect" in rows[0]["last_error"]
    assert delays.waited == [0.25, 0.5, 1.0]  # exponential backoff (jitter pinned low)
    assert _status_pending(online) == 2

    portal_server.restart()
    back = _summary(online)

    assert (back["batches_sent"], back["batches_duplicate"], back["records_sent"]) == (2, 0, 3)
    engine_id = json.loads((online.home / "engine.json").read_text())["engine_id"]
    assert portal_server.usage_totals[("lic-0001", engine_id, DAY, BUNDLE)]["scored"] == 50
    assert len(portal_server.feedback) == 2
    assert all(r["sent_at"] for r in outbox_rows(online.home))
    assert _summary(online)["batches_sent"] == 0


def test_a_lost_answer_is_sent_again_and_counted_once(online, portal_server):
    add_usage(online.home, scored=30)
    portal_server.report_faults.drop_after_accept = 1

    summary = _summary(online)

    assert (summary["batches_sent"], summary["batches_duplicate"]) == (0, 1)
    bodies = [r.body for r in _posts(portal_server, USAGE)]
    assert len(bodies) == 2
    assert bodies[0] == bodies[1]  # same batch id, same bytes
    assert [r.status for r in _posts(portal_server, USAGE)] == [0, 200]
    (total,) = portal_server.usage_totals.values()
    assert total["scored"] == 30


def test_a_lost_answer_repaired_by_the_next_run_is_counted_once(online, portal_server, monkeypatch):
    from scoring_engine import outbox  # noqa: PLC0415

    monkeypatch.setattr(outbox, "DEFAULT_RETRY", outbox.RetryPolicy(attempts=1))
    add_usage(online.home, scored=30)
    portal_server.report_faults.drop_after_accept = 1

    assert_fails(_report(online), 5, "kept in the outbox")
    again = _summary(online)

    assert again["batches_duplicate"] == 1
    (total,) = portal_server.usage_totals.values()
    assert total["scored"] == 30


def test_a_busy_portal_is_retried_with_backoff(online, portal_server, delays):
    add_item(online.home)
    portal_server.report_faults.unavailable = 2

    summary = _summary(online)

    assert summary["batches_sent"] == 1
    assert delays.waited == [0.25, 0.5]
    assert [r.status for r in _posts(portal_server)] == [503, 503, 201]
    (row,) = outbox_rows(online.home)
    assert (row["attempts"], row["last_error"]) == (3, None)


def test_a_portal_that_says_when_to_retry_is_given_that_long(online, portal_server, delays):
    add_item(online.home)
    portal_server.report_faults.unavailable = 2
    portal_server.report_faults.retry_after = "3"

    summary = _summary(online)

    assert summary["batches_sent"] == 1
    assert delays.waited == [3.0, 3.0]


def test_a_portal_that_asks_for_too_long_a_wait_keeps_the_batches_for_the_next_run(
    online, portal_server, delays
):
    add_item(online.home)
    portal_server.report_faults.unavailable = 1
    portal_server.report_faults.retry_after = "3600"

    busy = _report(online)

    assert_fails(busy, 5, "retry after 3600 s")
    assert delays.waited == []
    (row,) = outbox_rows(online.home)
    assert (row["attempts"], row["sent_at"]) == (1, None)
    assert_ok(_report(online))
    assert outbox_rows(online.home)[0]["sent_at"] is not None


def test_a_refused_batch_is_kept_with_its_error_while_the_others_go(online, portal_server):
    add_usage(online.home)
    with connect(EngineHome(online.home)) as connection:
        connection.execute("UPDATE usage_days SET scored = -5")  # a damaged count
    add_item(online.home)

    refused = _report(online)

    assert_fails(refused, 1, "the portal refused 1 batch, kept in the outbox")
    assert "HTTP 422 invalid_batch" in refused.stderr
    assert '"field":"scored"' in refused.stderr
    assert "Sent: 1 batch accepted, 0 already accepted before, 1 refused" in refused.stdout
    usage_row, feedback_row = outbox_rows(online.home)
    assert (usage_row["kind"], usage_row["sent_at"], usage_row["attempts"]) == ("usage", None, 1)
    assert "invalid_batch" in usage_row["last_error"]
    assert feedback_row["sent_at"] is not None
    assert len(portal_server.feedback) == 1

    assert_fails(_report(online), 1, "the portal refused 1 batch")
    assert outbox_rows(online.home)[0]["attempts"] == 2


#### License and lease ####


def test_a_revoked_license_stops_reporting_with_exit_3(online, portal_server):
    add_item(online.home)
    portal_server.license_status["lic-0001"] = "revoked"
    assert_fails(_report(online), 3, "revoked")
    assert _posts(portal_server) == []
    assert _status_pending(online) == 1


def test_a_lease_about_to_expire_is_renewed_first(online, portal_server):
    path = online.home / "activation.json"
    record = json.loads(path.read_text())
    soon = datetime.now(UTC) + timedelta(minutes=1)
    record["lease_expires_at"] = soon.strftime("%Y-%m-%dT%H:%M:%SZ")
    path.write_text(json.dumps(record))
    add_item(online.home)
    portal_server.requests.clear()

    assert_ok(_report(online))

    assert portal_server.requests[0] == ("POST", "/api/v1/leases/renew")
    new_lease = (online.home / "trust" / "lease.jwt").read_text().strip()
    assert {r.headers[LEASE_HEADER] for r in portal_server.report_requests} == {new_lease}
    renewed = json.loads(path.read_text())
    assert renewed["lease_verified"] is True
    assert datetime.fromisoformat(renewed["lease_expires_at"]) > soon + timedelta(days=6)


def test_a_lease_the_portal_refuses_is_renewed_once(online, portal_server):
    (online.home / "trust" / "lease.jwt").write_text("not.a.lease\n")
    add_item(online.home)

    assert_ok(_report(online))

    statuses = [(r.path, r.status) for r in portal_server.report_requests]
    assert statuses[0] == ("/api/v1/feedback/policy", 401)
    assert statuses[1:] == [("/api/v1/feedback/policy", 200), (FEEDBACK, 201)]
    assert ("POST", "/api/v1/leases/renew") in portal_server.requests


def test_a_deactivated_engine_is_told_how_to_activate_again(online, portal_server):
    engine_id = json.loads((online.home / "engine.json").read_text())["engine_id"]
    portal_server.deactivate("lic-0001", engine_id)
    add_item(online.home)
    assert_fails(_report(online), 3, "not activated")


def test_report_needs_a_portal(installed):
    assert_fails(installed("report"), 2, "names no portal")


#### Output ####


def test_the_summary_names_batches_and_records(online):
    add_usage(online.home)
    add_item(online.home)
    result = assert_ok(_report(online))
    assert result.stdout.splitlines() == [
        "Queued: 1 usage record, 1 feedback record (0 with text) in 2 batches.",
        "Portal policy: text sharing off, at most 1,000 per batch.",
        "Sent: 2 batches accepted, 0 already accepted before, 0 refused; 2 records.",
        "Pending: 0 batches (0 records) in the outbox.",
    ]


def test_the_body_sent_is_the_stored_payload_which_is_emptied_once_accepted(online, portal_server):
    stored = []

    def capture(handler):
        if handler.command == "POST":
            stored.extend(row["payload"] for row in outbox_rows(online.home))

    portal_server.on_request = capture
    add_item(online.home)
    assert_ok(_report(online))
    (request,) = _posts(portal_server)
    assert [request.body] == [payload.encode() for payload in stored]
    (row,) = outbox_rows(online.home)
    assert row["sent_at"] is not None
    assert row["payload"] == ""


def test_a_portal_down_when_the_lease_needs_renewing_still_queues_everything(online, portal_server):
    path = online.home / "activation.json"
    record = json.loads(path.read_text())
    record["lease_expires_at"] = "2026-01-01T00:00:00Z"
    path.write_text(json.dumps(record))
    add_usage(online.home)
    add_item(online.home)
    portal_server.stop()

    down = _report(online, "--json")

    assert_fails(down, 5, "2 batches (2 records) kept in the outbox")
    summary = json.loads(down.stdout)
    assert (summary["queued"]["batches"], summary["batches_sent"]) == (2, 0)
    assert summary["error"] == down.stderr.strip().removeprefix("error: ")
    assert [row["attempts"] for row in outbox_rows(online.home)] == [0, 0]

    portal_server.restart()
    assert _summary(online)["batches_sent"] == 2


def test_with_nothing_to_report_the_portal_is_not_asked(online, portal_server):
    portal_server.stop()  # not even needed
    result = assert_ok(_report(online))
    assert result.stdout == (
        "Nothing to report: no usage counts, no new verdicts, no unsent batches.\n"
    )
    assert portal_server.report_requests == []
    portal_server.restart()


def test_a_damaged_item_is_left_out_with_a_warning(online, portal_server):
    add_item(online.home)
    damaged = add_item(online.home)
    with connect(EngineHome(online.home)) as connection:
        connection.execute(
            "UPDATE review_items SET score_line = 'not json' WHERE item_id = ?", (damaged,)
        )

    result = assert_ok(_report(online))

    assert "1 feedback record (0 with text)" in result.stdout
    assert "warning: 1 reviewed item left in the review queue, not reported" in result.stderr
    assert len(portal_server.feedback) == 1
