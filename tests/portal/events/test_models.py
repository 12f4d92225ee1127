"""The audit trail is append-only, in the ORM and in the database."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import delete, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from portal.events.models import AppendOnlyError, Event
from portal.events.service import list_events, record_event
from portal.events.tags import EventTag
from tests.portal.support import ACTOR, savepoint


def _event(session: Session) -> Event:
    return record_event(
        session, EventTag.LICENSE_ISSUED, actor=ACTOR, subject_id="lic-1", payload={"days": 30}
    )


def test_recorded_event_keeps_actor_tag_and_payload(session: Session) -> None:
    event = _event(session)
    session.expire_all()
    stored = session.get(Event, event.id)
    assert stored is not None
    assert (stored.actor, stored.tag, stored.subject_id) == (ACTOR, "license:issued", "lic-1")
    assert stored.payload == {"days": 30}
    assert stored.created_at.tzinfo is not None


def test_list_events_filters_by_tag_and_subject_newest_first(session: Session) -> None:
    first = _event(session)
    record_event(session, EventTag.LICENSE_REVOKED, actor=ACTOR, subject_id="lic-1")
    record_event(session, EventTag.LICENSE_ISSUED, actor=ACTOR, subject_id="lic-2")
    assert [e.tag for e in list_events(session, subject_id="lic-1")] == [
        "license:revoked",
        "license:issued",
    ]
    assert list_events(session, tag=EventTag.LICENSE_ISSUED, subject_id="lic-1") == [first]


def test_changing_an_event_is_refused(session: Session) -> None:
    event = _event(session)
    event.actor = "someone else"
    with pytest.raises(AppendOnlyError):
        session.flush()


def test_deleting_an_event_is_refused(session: Session) -> None:
    event = _event(session)
    session.delete(event)
    with pytest.raises(AppendOnlyError):
        session.flush()


def test_bulk_update_and_delete_of_events_are_refused(session: Session) -> None:
    _event(session)
    with pytest.raises(AppendOnlyError):
        session.execute(update(Event).values(actor="someone else"))
    with pytest.raises(AppendOnlyError):
        session.execute(delete(Event))


@pytest.mark.parametrize(
    "statement",
    ["UPDATE events SET actor = 'someone else'", "DELETE FROM events"],
)
def test_database_refuses_raw_changes_to_events(session: Session, statement: str) -> None:
    event = _event(session)
    with savepoint(session), pytest.raises(DBAPIError, match="append-only"):
        session.connection().execute(text(statement))
    session.expire_all()
    assert session.get(Event, event.id) is not None


def test_tag_must_be_shaped_subject_action(session: Session) -> None:
    with savepoint(session):
        session.add(Event(tag="revoked", actor=ACTOR, payload={}))
        with pytest.raises(IntegrityError):
            session.flush()


def test_every_tag_is_subject_action() -> None:
    for tag in EventTag:
        assert re.fullmatch(r"[a-z]+:[a-z_]+", tag.value), tag
        assert f"{tag.subject}:{tag.action}" == tag.value
