"""``vigil-portal usage show``: what the engines reported, per organisation, engine,
bundle and day, and the feedback received per verdict; counts, never text.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from portal.organisations.models import Organisation
from tests.portal.usage.support import (
    BUNDLE,
    FEEDBACK,
    USAGE,
    Reporter,
    activate,
    batch,
    feedback_record,
    usage_record,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from fastapi.testclient import TestClient
    from sqlalchemy.orm import Session

    from tests.portal.support import Licensed, PortalCli

SHARED = {"messages": [{"author": "u1", "text": "a synthetic shared sentence"}]}


def _report(reporter: Reporter, session: Session) -> None:
    organisation = session.get(Organisation, reporter.licensed.license.organisation_id)
    assert organisation is not None
    organisation.text_sharing_enabled = True
    session.flush()
    usage = [
        usage_record(),
        usage_record(
            day="2026-11-30",
            scored=7,
            flagged=0,
            reviewed=0,
            verdicts={},
            score_histogram=[7] + [0] * 19,
        ),
    ]
    assert reporter.post(USAGE, batch(reporter.engine_id, usage)).status_code == 201
    feedback = [
        feedback_record(verdict="grooming", text=SHARED),
        feedback_record(verdict="grooming"),
        feedback_record(verdict="not_grooming"),
    ]
    assert reporter.post(FEEDBACK, batch(reporter.engine_id, feedback)).status_code == 201


def test_usage_show_json_lists_usage_and_feedback_counts(
    cli: PortalCli, reporter: Reporter, session: Session
) -> None:
    _report(reporter, session)
    result = cli("usage", "show", "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    november, december = document["usage"]
    assert november == {
        "organisation": "Example Chat Ltd",
        "engine_id": reporter.engine_id,
        "hostname": "scorer-1",
        "bundle": BUNDLE,
        "day": "2026-11-30",
        "scored": 7,
        "flagged": 0,
        "reviewed": 0,
        "verdicts": {"not_grooming": 0, "grooming": 0, "imminent_threat": 0},
        "score_histogram": [7] + [0] * 19,
    }
    assert (december["day"], december["scored"], december["flagged"]) == ("2026-12-01", 120, 3)
    assert december["verdicts"] == {"not_grooming": 1, "grooming": 1, "imminent_threat": 0}
    assert document["feedback"] == [
        {
            "organisation": "Example Chat Ltd",
            "bundle": BUNDLE,
            "verdict": "grooming",
            "records": 2,
            "with_text": 1,
        },
        {
            "organisation": "Example Chat Ltd",
            "bundle": BUNDLE,
            "verdict": "not_grooming",
            "records": 1,
            "with_text": 0,
        },
    ]
    assert "synthetic shared sentence" not in result.output


def test_usage_show_prints_tables_without_text(
    cli: PortalCli, reporter: Reporter, session: Session
) -> None:
    _report(reporter, session)
    result = cli("usage", "show")
    assert result.exit_code == 0, result.output
    assert "Usage of Example Chat Ltd, engine scorer-1" in result.output
    assert "Feedback received" in result.output
    assert "2026-12-01" in result.output
    assert "120" in result.output
    assert "synthetic shared sentence" not in result.output


def test_usage_show_org_keeps_to_that_organisation(
    cli: PortalCli,
    reporter: Reporter,
    client: TestClient,
    make_licensed: Callable[..., Licensed],
    session: Session,
) -> None:
    _report(reporter, session)
    other = activate(client, make_licensed("Other Chat"))
    assert (
        other.post(
            USAGE,
            batch(
                other.engine_id,
                [
                    usage_record(
                        scored=5, flagged=0, reviewed=0, verdicts={}, score_histogram=[5] + [0] * 19
                    )
                ],
            ),
        ).status_code
        == 201
    )
    everyone = json.loads(cli("usage", "show", "--json").stdout)
    assert {line["organisation"] for line in everyone["usage"]} == {
        "Example Chat Ltd",
        "Other Chat",
    }
    result = cli("usage", "show", "--org", "Other Chat", "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert [(line["organisation"], line["scored"]) for line in document["usage"]] == [
        ("Other Chat", 5)
    ]
    assert document["feedback"] == []


def test_usage_show_of_an_unknown_organisation_exits_2(cli: PortalCli, reporter: Reporter) -> None:
    result = cli("usage", "show", "--org", "Nobody Ltd")
    assert result.exit_code == 2
    assert "no organisation named 'Nobody Ltd'" in result.output


def test_usage_show_says_when_nothing_was_reported(cli: PortalCli, reporter: Reporter) -> None:
    result = cli("usage", "show")
    assert result.exit_code == 0, result.output
    assert "no usage or feedback received yet" in result.output
    assert json.loads(cli("usage", "show", "--json").stdout) == {"usage": [], "feedback": []}
