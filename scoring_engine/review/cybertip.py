"""A CyberTipline-style report draft of a reviewed conversation (``review export``).

The draft uses the publicly documented element names of NCMEC's CyberTipline reporting
API (``report`` with ``incidentSummary``, ``internetDetails``/``chatImIncident``,
``personOrUserReported``, ``reporter``, ``additionalInfo``). It is a draft for a moderator
to complete and submit through the organisation's own ESP account: the engine never sends
it anywhere. Only items a moderator judged ``grooming`` or ``imminent_threat`` are exported,
and only while their text is still kept.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Final

from scoring_engine.home import atomic_write
from scoring_engine.review import Verdict
from scoring_engine.review.queue import ReviewError, ReviewItem, isoformat_z

INCIDENT_TYPE: Final = "Online Enticement of Children for Sexual Acts"
ADULT_AGE: Final = 18
REPORTABLE: Final = frozenset({Verdict.GROOMING, Verdict.IMMINENT_THREAT})
# Characters XML 1.0 cannot hold; chat text can contain them.
_NOT_XML: Final = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _clean(text: object) -> str:
    return _NOT_XML.sub("\ufffd", str(text))


def _sub(parent: ET.Element, tag: str, text: object | None = None) -> ET.Element:
    element = ET.SubElement(parent, tag)
    if text is not None:
        element.text = _clean(text)
    return element


def stated_minors(participants: dict[str, dict[str, Any]]) -> set[str]:
    """Participants whose declared age is under 18."""
    minors = set()
    for user, facts in participants.items():
        age = facts.get("declared_age") if isinstance(facts, dict) else None
        if isinstance(age, int | float) and not isinstance(age, bool) and age < ADULT_AGE:
            minors.add(user)
    return minors


def check_exportable(item: ReviewItem) -> None:
    if item.verdict is None:
        raise ReviewError(
            f"review item {item.item_id} has no verdict yet; record one with "
            "`vigil-engine review verdict` before exporting"
        )
    if item.verdict not in REPORTABLE:
        raise ReviewError(
            f"review item {item.item_id} was judged {item.verdict.value}; only grooming "
            "and imminent_threat items are exported"
        )
    if item.conversation is None:
        raise ReviewError(
            f"review item {item.item_id}: its text was deleted under the retention period;"
            " nothing to export"
        )


def _transcript(item: ReviewItem) -> str:
    lines = []
    for index, message in enumerate(item.messages):
        ts = message.get("ts") or "time unknown"
        lines.append(f"[{index}] {ts} {message.get('author')}: {message.get('text')}")
    return "\n".join(lines)


def build_report(item: ReviewItem) -> ET.Element:
    """The report draft of a reviewed, reportable item (raises :class:`ReviewError`)."""
    check_exportable(item)
    report = ET.Element("report")
    report.append(
        ET.Comment(
            " DRAFT made by vigil-engine from a moderator's review. Check every field and"
            " complete the reporter section before submitting to the CyberTipline. "
        )
    )

    summary = _sub(report, "incidentSummary")
    _sub(summary, "incidentType", INCIDENT_TYPE)
    if item.verdict is Verdict.IMMINENT_THREAT:
        _sub(summary, "escalateToHighPriority", "Moderator judged this an imminent threat")
    timestamps = [m["ts"] for m in item.messages if m.get("ts")]
    _sub(summary, "incidentDateTime", timestamps[0] if timestamps else isoformat_z(item.queued_at))

    chat = _sub(_sub(report, "internetDetails"), "chatImIncident")
    platform = (item.conversation or {}).get("platform")
    _sub(chat, "chatClient", platform or "")
    _sub(chat, "chatRoomName", item.conversation_id)
    _sub(chat, "content", _transcript(item))

    reporter = _sub(report, "reporter")
    reporter.append(
        ET.Comment(" To complete by the moderator: who reports, and how to reach them ")
    )
    person = _sub(reporter, "reportingPerson")
    for tag in ("firstName", "lastName", "email", "phone"):
        _sub(person, tag, "")

    participants = item.participants
    authors = list(dict.fromkeys([*participants, *(str(m.get("author")) for m in item.messages)]))
    minors = stated_minors(participants)
    reported = [user for user in authors if user not in minors]
    for user in reported:
        entry = _sub(report, "personOrUserReported")
        if not minors:
            entry.append(
                ET.Comment(" No participant declared an age under 18: check who is reported ")
            )
        _sub(entry, "espIdentifier", user)
        _sub(entry, "screenName", user)
    for user in sorted(minors):
        victim = _sub(report, "victim")
        _sub(victim, "espIdentifier", user)
        _sub(victim, "age", participants[user].get("declared_age"))

    info = [
        f"Vigil review item {item.item_id}, bundle {item.bundle}",
        (
            f"Score {item.score:.3f} (threshold {item.threshold:.3f}); verdict {item.verdict}"
            f" by {item.moderator or 'unknown'} at "
            f"{isoformat_z(item.reviewed_at) if item.reviewed_at else 'unknown'}"
        ),
        "Characteristics: "
        + ", ".join(f"{name} {value:.2f}" for name, value in item.characteristics.items()),
        "Evidence messages: "
        + ", ".join(
            f"[{e.get('message')}] {e.get('characteristic')}"
            for e in item.score_line.get("evidence", [])
        ),
        f"Moderator note: {item.note or '(none)'}",
    ]
    _sub(report, "additionalInfo", "\n".join(info))
    return report


def export_report(item: ReviewItem, out: Path) -> None:
    """Write the draft (mode 0600: it holds the conversation's text)."""
    report = build_report(item)
    ET.indent(report)
    data = ET.tostring(report, encoding="utf-8", xml_declaration=True) + b"\n"
    atomic_write(out, data, mode=0o600)
