"""The moderation and improvement loop on loopback, driven through both CLIs.

A portal serves; a licensed engine scores with ``--queue``, its moderator records three
verdicts and exports a CyberTipline draft, ``report`` runs twice, and the portal counts
every scored conversation and verdict exactly once without a word of message text in
its database or files; ``models retrain --with-feedback`` then names the feedback it used
in the candidate's card. This is the "done when" of the moderation issue.
"""

from __future__ import annotations

import json
import random
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest

from tests.e2e.test_distribution import DEMO, REFERENCE, Operator, serving_portal
from tests.factories import corpus, grooming_conversation, write_jsonl

MODERATION = DEMO.with_name("moderation.jsonl")

pytestmark = pytest.mark.e2e


def _message_texts(*paths: Path) -> set[str]:
    """Every message of the inputs long enough that finding it cannot be chance."""
    texts = set()
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            texts.update(m["text"] for m in json.loads(line)["messages"] if len(m["text"]) >= 16)
    return texts


def _files_holding(root: Path, texts: set[str]) -> list[str]:
    """Files under root with any of the texts in them (names only: never print text)."""
    needles = [text.encode("utf-8") for text in texts]
    return sorted(
        str(path.relative_to(root))
        for path in root.rglob("*")
        if path.is_file() and any(needle in path.read_bytes() for needle in needles)
    )


@pytest.fixture
def world(tmp_path: Path):
    op = Operator(tmp_path)
    op.portal("init")
    op.portal("bundles", "publish", str(REFERENCE), "--version", "2026.11.0", "--channel", "stable")
    op.portal(
        "licenses",
        *("issue", "--org", "Loopback Moderation", "--days", "30", "--channel", "stable"),
        *("--out", str(tmp_path / "org.license")),
    )
    op.portal("repo", "root", "--out", str(tmp_path / "root.json"))
    with serving_portal(op) as url:
        yield op, url


def test_verdicts_flow_back_once_without_text_and_feed_the_next_model(world) -> None:
    op, url = world
    tmp = op.tmp
    root, org = str(tmp / "root.json"), str(tmp / "org.license")
    op.engine("engine", "init", "--root", root, "--license", org, "--portal", url)
    op.engine("engine", "update")

    # Score with the queue: every flagged conversation waits for a moderator.
    op.engine("engine", "score", str(DEMO), str(MODERATION), "--queue", "--out", str(tmp / "s"))
    scores = [json.loads(line) for line in (tmp / "s").read_text().splitlines()]
    flagged = sorted(s["id"] for s in scores if s["flagged"])
    assert len(scores) == 9
    assert len(flagged) >= 3
    queue = json.loads(op.engine("engine", "review", "list", "--json").stdout)
    assert sorted(item["conversation_id"] for item in queue) == flagged

    # Three verdicts; an unknown verdict is bad usage.
    first, second, third = (item["id"] for item in queue[:3])
    op.engine("engine", "review", "verdict", first, "grooming", "--note", "secrecy, meeting")
    op.engine("engine", "review", "verdict", second, "imminent_threat", "--moderator", "sam")
    op.engine("engine", "review", "verdict", third, "not_grooming")
    op.engine("engine", "review", "verdict", third, "maybe", expect=2)
    shown = op.engine("engine", "review", "show", first).stdout
    assert "grooming" in shown

    # The moderator's CyberTipline draft: high priority for the imminent threat.
    draft = tmp / "cybertip.xml"
    op.engine("engine", "review", "export", second, "--format", "cybertip", "--out", str(draft))
    report = ET.parse(draft).getroot()  # noqa: S314 - the engine's own draft
    assert report.find(".//incidentSummary/incidentType").text == (
        "Online Enticement of Children for Sexual Acts"
    )
    assert report.find(".//escalateToHighPriority") is not None
    assert report.find(".//internetDetails/chatImIncident") is not None

    # Report twice: the second run has nothing new and counts nothing again.
    sent = json.loads(op.engine("engine", "report", "--json").stdout)
    assert sent["batches_failed"] == 0
    assert sent["records_sent"] >= 1 + 3
    again = json.loads(op.engine("engine", "report", "--json").stdout)
    assert again["records_sent"] == 0
    assert json.loads(op.engine("engine", "status", "--json").stdout)["pending_reports"] == 0

    usage = json.loads(op.portal("usage", "show", "--json").stdout)
    assert {line["organisation"] for line in usage["usage"]} == {"Loopback Moderation"}
    totals: Counter[str] = Counter()
    for line in usage["usage"]:
        totals.update({k: line[k] for k in ("scored", "flagged", "reviewed")})
        totals.update(line["verdicts"])
    assert (totals["scored"], totals["flagged"], totals["reviewed"]) == (9, len(flagged), 3)
    assert (totals["not_grooming"], totals["grooming"], totals["imminent_threat"]) == (1, 1, 1)
    feedback = {line["verdict"]: line for line in usage["feedback"]}
    assert {v: line["records"] for v, line in feedback.items()} == {
        "not_grooming": 1,
        "grooming": 1,
        "imminent_threat": 1,
    }
    assert all(line["with_text"] == 0 for line in feedback.values())

    # No message text anywhere on the portal's side: database, repository, mail, logs.
    texts = _message_texts(DEMO, MODERATION)
    assert _files_holding(tmp / "portal", texts) == []
    assert _files_holding(tmp / "engine", texts)  # the engine keeps its queue's text

    # The feedback feeds the next model (a small base trained here on written chat).
    data = write_jsonl(tmp / "train.jsonl", corpus(150, 50, seed=3))
    transcripts = write_jsonl(
        tmp / "transcripts.jsonl", [grooming_conversation(random.Random(i), i) for i in range(8)]
    )
    recipe = ("--data", str(data), "--windows-from", str(transcripts))
    small = ("--windows-per-conversation", "2", "--min-cases", "2", "--folds", "3")
    op.portal(
        "models", "train", *recipe, *small, "--no-leave-one-source-out", "--out", str(tmp / "b")
    )
    op.portal(
        "models", "retrain", "--base", str(tmp / "b"), *recipe, "--with-feedback",
        "--out", str(tmp / "candidate"),
    )  # fmt: skip
    card = (tmp / "candidate" / "MODEL_CARD.md").read_text()
    manifest = json.loads((tmp / "candidate" / "manifest.json").read_text())
    assert manifest["feedback"]["records"] == 3
    assert (manifest["feedback"]["grooming"], manifest["feedback"]["not_grooming"]) == (1, 1)
    assert "retrained with 3 moderator verdicts" in card
