"""Finding and creating organisations, and their text sharing switch."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from sqlalchemy import select

from portal.errors import ConflictError, InvalidInputError, NotFoundError
from portal.events.service import record_event
from portal.events.tags import EventTag
from portal.magic_links.models import LinkPurpose
from portal.magic_links.service import withdraw_links
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


class OrganisationNotFoundError(NotFoundError):
    pass


def parse_organisation_id(value: str) -> uuid.UUID:
    """An organisation id from a URL.

    Raises:
        OrganisationNotFoundError: ``value`` is not an id (answered as "no such organisation").
    """
    try:
        return uuid.UUID(value)
    except ValueError:
        raise OrganisationNotFoundError("there is no such organisation") from None


def get_organisation(session: Session, organisation_id: uuid.UUID) -> Organisation:
    """Raises:
    OrganisationNotFoundError: No organisation has this id.
    """
    organisation = session.get(Organisation, organisation_id)
    if organisation is None:
        raise OrganisationNotFoundError("there is no such organisation")
    return organisation


def set_text_sharing(
    session: Session, organisation_id: uuid.UUID, *, enabled: bool, actor: str
) -> Organisation:
    """Allow (or stop) the organisation's engines sending message text with feedback.

    Rules: text sharing is off until an administrator turns it on; every change
    is audited (``organisation:text_sharing_enabled`` / ``_disabled``); asking
    for the state it already has is refused, so the trail records real changes
    only. Turning it off makes the portal refuse text from then on; feedback
    text already received is not deleted by this switch.

    Raises:
        OrganisationNotFoundError: No organisation has this id.
        ConflictError: Sharing is already in the state asked for.
    """
    organisation = get_organisation(session, organisation_id)
    if organisation.text_sharing_enabled is enabled:
        state = "enabled" if enabled else "disabled"
        raise ConflictError(f"text sharing is already {state} for {organisation.name}")
    organisation.text_sharing_enabled = enabled
    session.flush()
    record_event(
        session,
        EventTag.ORGANISATION_TEXT_SHARING_ENABLED
        if enabled
        else EventTag.ORGANISATION_TEXT_SHARING_DISABLED,
        actor=actor,
        subject_id=str(organisation.id),
        payload={"name": organisation.name},
    )
    return organisation


def withdraw_dashboard_links(
    session: Session, organisation_id: uuid.UUID, *, reason: str, actor: str
) -> int:
    """Make the organisation's dashboard links (``portal.dashboard``) stop working now;
    returns how many still worked. Audited (``organisation:dashboard_links_withdrawn``,
    with the reason) when one did.

    Raises:
        OrganisationNotFoundError: No organisation has this id.
    """
    organisation = get_organisation(session, organisation_id)
    withdrawn = withdraw_links(session, LinkPurpose.ORGANISATION_DASHBOARD, str(organisation.id))
    if withdrawn:
        record_event(
            session,
            EventTag.ORGANISATION_DASHBOARD_LINKS_WITHDRAWN,
            actor=actor,
            subject_id=str(organisation.id),
            payload={"links": withdrawn, "reason": reason},
        )
    return withdrawn
