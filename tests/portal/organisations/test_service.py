"""Finding and creating organisations."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from portal.errors import InvalidInputError
from portal.events.service import list_events
from portal.events.tags import EventTag
from portal.organisations.service import get_or_create_organisation, get_organisation_by_name
from tests.portal.support import ACTOR


def test_an_organisation_is_created_once_and_audited(session: Session) -> None:
    created = get_or_create_organisation(session, "Example  Chat Ltd ", actor=ACTOR)
    again = get_or_create_organisation(session, "Example Chat Ltd", actor=ACTOR)
    assert again is created
    assert created.name == "Example Chat Ltd"
    assert get_organisation_by_name(session, " Example Chat Ltd") is created
    events = list_events(session, tag=EventTag.ORGANISATION_CREATED)
    assert [event.subject_id for event in events] == [str(created.id)]


@pytest.mark.parametrize("name", ["", "   ", "x" * 201])
def test_unusable_names_are_refused(session: Session, name: str) -> None:
    with pytest.raises(InvalidInputError):
        get_or_create_organisation(session, name, actor=ACTOR)
