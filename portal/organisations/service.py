"""Finding and creating organisations."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select

from portal.errors import InvalidInputError
from portal.events.service import record_event
from portal.events.tags import EventTag
from portal.organisations.models import Organisation

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

MAX_NAME_LENGTH = 200


def normalise_name(name: str) -> str:
    """The name with surrounding and repeated whitespace removed.

    Raises:
        InvalidInputError: The name is empty or too long.
    """
    cleaned = " ".join(name.split())
    if not cleaned:
        raise InvalidInputError("an organisation name must not be empty")
    if len(cleaned) > MAX_NAME_LENGTH:
        raise InvalidInputError(f"an organisation name is at most {MAX_NAME_LENGTH} characters")
    return cleaned


def get_organisation_by_name(session: Session, name: str) -> Organisation | None:
    return session.scalars(
        select(Organisation).where(Organisation.name == normalise_name(name))
    ).one_or_none()


def get_or_create_organisation(session: Session, name: str, *, actor: str) -> Organisation:
    """The organisation called ``name``, created (and audited) if it is new."""
    existing = get_organisation_by_name(session, name)
    if existing is not None:
        return existing
    organisation = Organisation(name=normalise_name(name))
    session.add(organisation)
    session.flush()
    record_event(
        session,
        EventTag.ORGANISATION_CREATED,
        actor=actor,
        subject_id=str(organisation.id),
        payload={"name": organisation.name},
    )
    return organisation
