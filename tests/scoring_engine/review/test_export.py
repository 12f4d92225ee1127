"""``vigil-engine review export ID --format cybertip``: the XML report draft and its refusals."""

from __future__ import annotations

import stat
import xml.etree.ElementTree as ET

import pytest

from scoring_engine.review.cybertip import INCIDENT_TYPE
from tests.scoring_engine.licensed import assert_fails, assert_ok
from tests.scoring_engine.review.conftest import ADULT, CHILD, execute, item_id


def _parse(path):
    return ET.parse(path).getroot()  # noqa: S314 - the engine's own draft, written by the test


def _export(engine, conversation_id, out, *extra):
    return engine(
        "review", "export", item_id(engine, conversation_id), "--format", "cybertip",
        "--out", out, *extra,
    )  # fmt: skip


def test_a_grooming_verdict_exports_a_draft_with_the_documented_elements(queued, tmp_path):
    assert_ok(queued("review", "verdict", item_id(queued, "g-1"), "grooming", "--note", "sure"))
    out = tmp_path / "report.xml"
    result = assert_ok(_export(queued, "g-1", out))
    assert "CyberTipline report draft" in result.stdout
    assert stat.S_IMODE(out.stat().st_mode) == 0o600  # it holds the conversation's text

    report = _parse(out)
    assert report.tag == "report"
    assert [child.tag for child in report] == [
        "incidentSummary",
        "internetDetails",
        "reporter",
        "personOrUserReported",
        "victim",
        "additionalInfo",
    ]
    assert report.findtext("incidentSummary/incidentType") == INCIDENT_TYPE
    assert report.find("incidentSummary/escalateToHighPriority") is None
    assert report.findtext("incidentSummary/incidentDateTime") == "2026-11-30T20:00:00Z"
    chat = report.find("internetDetails/chatImIncident")
    assert chat is not None
    assert chat.findtext("chatClient") == "ExampleChat"
    content = chat.findtext("content") or ""
    assert "[5] 2026-11-30T20:05:00Z u2: dont tell your mom we talk" in content
    assert report.find("reporter/reportingPerson") is not None
    # The stated adult is the person reported; the stated 13-year-old is the victim.
    assert [e.findtext("espIdentifier") for e in report.findall("personOrUserReported")] == [ADULT]
    assert report.findtext("victim/espIdentifier") == CHILD
    assert report.findtext("victim/age") == "13"
    info = report.findtext("additionalInfo") or ""
    assert "verdict grooming" in info
    assert "Moderator note: sure" in info


def test_an_imminent_threat_is_escalated_to_high_priority(queued, tmp_path):
    assert_ok(queued("review", "verdict", item_id(queued, "g-2"), "imminent_threat"))
    out = tmp_path / "urgent.xml"
    assert_ok(_export(queued, "g-2", out))
    escalation = _parse(out).find("incidentSummary/escalateToHighPriority")
    assert escalation is not None
    assert escalation.text


def test_unreviewed_items_are_not_exported(queued, tmp_path):
    out = tmp_path / "report.xml"
    assert_fails(_export(queued, "g-1", out), 2, "has no verdict yet")
    assert not out.exists()


def test_not_grooming_items_are_not_exported(queued, tmp_path):
    assert_ok(queued("review", "verdict", item_id(queued, "g-1"), "not_grooming"))
    out = tmp_path / "report.xml"
    assert_fails(_export(queued, "g-1", out), 2, "was judged not_grooming")
    assert not out.exists()


def test_items_whose_text_was_deleted_are_not_exported(queued, tmp_path):
    assert_ok(queued("review", "verdict", item_id(queued, "g-1"), "grooming"))
    execute(queued, "UPDATE review_items SET reviewed_at = '2020-01-01T00:00:00Z'")
    out = tmp_path / "report.xml"
    assert_fails(_export(queued, "g-1", out), 2, "text was deleted")
    assert not out.exists()


def test_text_that_xml_cannot_hold_is_replaced_not_a_broken_file(installed, tmp_path):
    from tests.scoring_engine.review.conftest import grooming_chat, write_lines  # noqa: PLC0415

    chat = grooming_chat("g-ctl")
    chat["messages"][0]["text"] = "bell \x07 and <b>tags</b> & more"
    assert_ok(installed("score", write_lines(tmp_path / "ctl.jsonl", [chat]), "--queue"))
    assert_ok(installed("review", "verdict", item_id(installed, "g-ctl"), "grooming"))
    out = tmp_path / "report.xml"
    assert_ok(_export(installed, "g-ctl", out))
    content = _parse(out).findtext("internetDetails/chatImIncident/content") or ""
    assert "bell \ufffd and <b>tags</b> & more" in content


@pytest.mark.parametrize("fmt", ["pdf", "CYBERTIP "])
def test_an_unknown_report_format_exits_2(queued, tmp_path, fmt):
    assert_ok(queued("review", "verdict", item_id(queued, "g-1"), "grooming"))
    reference = item_id(queued, "g-1")
    result = queued("review", "export", reference, "--format", fmt, "--out", tmp_path / "r")
    assert_fails(result, 2, "unknown report format")


def test_an_unwritable_destination_exits_2(queued, tmp_path):
    assert_ok(queued("review", "verdict", item_id(queued, "g-1"), "grooming"))
    (tmp_path / "a-file").write_text("not a directory")
    assert_fails(_export(queued, "g-1", tmp_path / "a-file" / "r.xml"), 2, "cannot write")
